/* LR schedules against their formulas at chosen steps (hand-computed
 * constants), warmup boundaries included, and schedule validation. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "qat/optim.h"

static void near_at(const qat_lr_schedule *s, long step, double want)
{
    float got = qat_lr_at(s, step);
    cr_expect(fabs((double)got - want) <= 1e-6 * fabs(want), "%s step %ld: got %.9g, want %.9g",
              qat_lr_kind_name(s->kind), step, (double)got, want);
}

static qat_lr_schedule sched(qat_lr_kind k, float base, long warmup)
{
    qat_lr_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = k;
    s.base_lr = base;
    s.warmup_steps = warmup;
    cr_assert_eq(k == QAT_LR_CONSTANT ? qat_lr_schedule_check(&s, NULL) : QAT_OK, QAT_OK);
    return s;
}

Test(schedule, constant_with_warmup)
{
    /* base 0.1, warmup 4: step k < 4 gets 0.1 (k + 1) / 4. */
    qat_lr_schedule s = sched(QAT_LR_CONSTANT, 0.1f, 4);
    near_at(&s, 0, 0.025);
    near_at(&s, 1, 0.05);
    near_at(&s, 2, 0.075);
    near_at(&s, 3, 0.1); /* last warmup step reaches base */
    near_at(&s, 4, 0.1);
    near_at(&s, 100000, 0.1);
    near_at(&s, -3, 0.025); /* negative counts as 0 */
    s.warmup_steps = 0;
    near_at(&s, 0, 0.1);
}

Test(schedule, step_decay)
{
    /* base 0.8, gamma 0.5, step_size 3, warmup 2: warmup 0.4, 0.8; then
     * t = step - 2 and lr = 0.8 * 0.5^floor(t / 3). */
    qat_lr_schedule s = sched(QAT_LR_STEP, 0.8f, 2);
    s.gamma = 0.5f;
    s.step_size = 3;
    cr_assert_eq(qat_lr_schedule_check(&s, NULL), QAT_OK);
    near_at(&s, 0, 0.4);
    near_at(&s, 1, 0.8);
    near_at(&s, 2, 0.8); /* t 0 */
    near_at(&s, 4, 0.8); /* t 2: still the first period */
    near_at(&s, 5, 0.4); /* t 3 */
    near_at(&s, 7, 0.4); /* t 5 */
    near_at(&s, 8, 0.2); /* t 6 */
    near_at(&s, 11, 0.1); /* t 9 */
    /* Without warmup the decay counts from step 0. gamma 0.1: 0.8, 0.08, 0.008. */
    s.warmup_steps = 0;
    s.gamma = 0.1f;
    near_at(&s, 2, 0.8);
    near_at(&s, 3, 0.08);
    near_at(&s, 6, 0.008);
}

Test(schedule, cosine_with_floor_and_warmup)
{
    /* base 1, min 0.2, T 4, warmup 2: warmup 0.5, 1.0; then
     * lr = 0.2 + 0.8 (1 + cos(pi t / 4)) / 2 = 0.2 + 0.4 (1 + cos(pi t / 4)):
     *   t 0: 0.2 + 0.8 = 1
     *   t 1: 0.2 + 0.4 (1 + 0.7071067812) = 0.8828427125
     *   t 2: 0.2 + 0.4 = 0.6
     *   t 3: 0.2 + 0.4 (1 - 0.7071067812) = 0.3171572875
     *   t >= 4: 0.2 */
    qat_lr_schedule s = sched(QAT_LR_COSINE, 1.0f, 2);
    s.min_lr = 0.2f;
    s.total_steps = 4;
    cr_assert_eq(qat_lr_schedule_check(&s, NULL), QAT_OK);
    near_at(&s, 0, 0.5);
    near_at(&s, 1, 1.0);
    near_at(&s, 2, 1.0);
    near_at(&s, 3, 0.8828427125);
    near_at(&s, 4, 0.6);
    near_at(&s, 5, 0.3171572875);
    near_at(&s, 6, 0.2);
    near_at(&s, 1000, 0.2);
    /* min 0, T 3, no warmup: 0.5 (1 + cos(pi t / 3)): t 1: 0.75; t 2: 0.25; then 0. */
    s.min_lr = 0.0f;
    s.total_steps = 3;
    s.warmup_steps = 0;
    near_at(&s, 0, 1.0);
    near_at(&s, 1, 0.75);
    near_at(&s, 2, 0.25);
    cr_expect_eq(qat_lr_at(&s, 3), 0.0f);
    cr_expect_eq(qat_lr_at(&s, 50), 0.0f);
}

Test(schedule, names)
{
    const char *names[] = {"constant", "step", "cosine"};
    cr_expect_eq(qat_enum_count(qat_lr_kind_names), 3);
    for (int k = 0; k < 3; k++) {
        cr_expect_eq(qat_enum_parse(qat_lr_kind_names, names[k]), k);
        cr_expect_str_eq(qat_lr_kind_name((qat_lr_kind)k), names[k]);
    }
    cr_expect_eq(qat_enum_parse(qat_lr_kind_names, "linear"), -1);
    cr_expect_eq(qat_enum_parse(qat_lr_kind_names, NULL), -1);
    cr_expect_str_eq(qat_lr_kind_name((qat_lr_kind)9), "unknown");
}

static void expect_bad(const qat_lr_schedule *s, const char *needle)
{
    qat_error e;
    qat_error_clear(&e);
    cr_expect_eq(qat_lr_schedule_check(s, &e), QAT_EINVAL, "accepted; wanted '%s'", needle);
    cr_expect(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
}

Test(schedule, bad_parameters_name_the_field)
{
    qat_lr_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = QAT_LR_CONSTANT;
    s.base_lr = 0.0f;
    expect_bad(&s, "base_lr");
    s.base_lr = NAN;
    expect_bad(&s, "base_lr");
    s.base_lr = 0.1f;
    s.warmup_steps = -1;
    expect_bad(&s, "warmup_steps");
    s.warmup_steps = 0;
    s.kind = (qat_lr_kind)7;
    expect_bad(&s, "kind");

    s.kind = QAT_LR_STEP;
    s.gamma = 0.5f;
    s.step_size = 0;
    expect_bad(&s, "step_size");
    s.step_size = 10;
    s.gamma = 0.0f;
    expect_bad(&s, "gamma");
    s.gamma = 1.5f;
    expect_bad(&s, "gamma");
    s.gamma = 1.0f;
    cr_expect_eq(qat_lr_schedule_check(&s, NULL), QAT_OK);

    s.kind = QAT_LR_COSINE;
    s.total_steps = 0;
    expect_bad(&s, "total_steps");
    s.total_steps = 100;
    s.min_lr = 0.2f; /* above base_lr 0.1 */
    expect_bad(&s, "min_lr");
    s.min_lr = -0.01f;
    expect_bad(&s, "min_lr");
    s.min_lr = 0.1f;
    cr_expect_eq(qat_lr_schedule_check(&s, NULL), QAT_OK);
}
