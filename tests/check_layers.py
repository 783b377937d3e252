#!/usr/bin/env python3
"""The layer order of README's Layout section, checked on every #include of
src/ and include/qat/: arrows only point down.

    core < config, dist < optim, autograd < data < ops < quant < nn < prune
         < train < ptq < export < run < sweep < cli

(dist: the MPI process group, src/dist; only the training stack links it.)

The runtime is a tower of its own on core: runtime.h may be read from export
up (training code reads the runtime only through export), runtime_h5.h (the
model files) from run up; the runtime itself includes core only, and its
h5/ layer the runtime. data stays pure C on core (qat-infer links it); its
h5/ part, the HDF5 datasets, reads data and core only, and only the layers
that link HDF5 anyway (train up) may include it. A
"dir/x.h" include names a module's private header: only that module may use
it.

usage: check_layers.py SOURCE_ROOT   (exit 1 and one line per violation)
"""
import os
import re
import sys

RANK = {
    'core': 0, 'config': 1, 'dist': 1, 'optim': 2, 'autograd': 2, 'data': 3, 'ops': 4, 'quant': 5,
    'nn': 6, 'prune': 7, 'train': 8, 'ptq': 9, 'export': 10, 'run': 11, 'sweep': 12,
    'cli': 13,
    # the rank from which a layer may read the runtime; what the runtime
    # itself may read is RESTRICTED below
    'runtime': 10, 'runtime/h5': 11,
    # HDF5 datasets: beside data (which must not link HDF5); read by the
    # training loop and the tools
    'data/h5': 8,
}
# Public headers whose owner their name does not tell (see header_owner).
HEADER_OWNER = {
    'status.h': 'core', 'status_types.h': 'core', 'fixedpoint.h': 'core', 'hot_clones.h': 'core',
    'runtime.h': 'runtime', 'runtime_h5.h': 'runtime/h5', 'data_h5.h': 'data/h5',
}
RESTRICTED = {  # modules that may read only these, whatever their rank
    'runtime': {'core', 'runtime'},
    'runtime/h5': {'core', 'runtime', 'runtime/h5'},
    'data': {'core', 'data'},
    'data/h5': {'core', 'data', 'data/h5'},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def header_owner(root, name):
    """The module of include/qat/<name>: the table above, else the module
    named like it (nn.h: src/nn/), else the one holding the source file named
    like it (team.h: src/core/team.c). None if neither."""
    if name in HEADER_OWNER:
        return HEADER_OWNER[name]
    stem = name[:-2]
    if stem in RANK and os.path.isdir(os.path.join(root, 'src', stem)):
        return stem
    prefix = stem.split('_')[0]  # export_onnx.h: a part of export's API
    if prefix != stem and prefix in RANK and os.path.isdir(os.path.join(root, 'src', prefix)):
        return prefix
    for mod in RANK:
        if os.path.isfile(os.path.join(root, 'src', mod, stem + '.c')):
            return mod
    return None


def module_of(root, rel):
    """The module a file under src/ or include/qat/ belongs to."""
    parts = rel.split('/')
    if parts[0] == 'include':
        return header_owner(root, parts[-1])
    if parts[1] in ('runtime', 'data') and len(parts) > 3 and parts[2] == 'h5':
        return parts[1] + '/h5'
    if parts[1] == 'runtime':
        return 'runtime'
    return parts[1]


def allowed(mod, dep):
    if mod in RESTRICTED:
        return dep in RESTRICTED[mod]
    return RANK[dep] <= RANK[mod]


def main(root):
    errors = []
    files = []
    for top in ('src', 'include/qat'):
        for d, _, names in os.walk(os.path.join(root, top)):
            files += [os.path.join(d, n) for n in names if n.endswith(('.c', '.h'))]
    for path in sorted(files):
        rel = os.path.relpath(path, root)
        mod = module_of(root, rel)
        if mod is None or mod not in RANK:
            errors.append(f'{rel}: belongs to no layer (add it to {sys.argv[0]})')
            continue
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for m in INCLUDE.finditer(text):
            inc = m.group(1)
            line = text.count('\n', 0, m.start()) + 1
            if inc.startswith('qat/'):
                dep = header_owner(root, inc[4:])
                if dep is None:
                    errors.append(f'{rel}:{line}: "{inc}" belongs to no layer '
                                  f'(add it to {sys.argv[0]})')
                elif not allowed(mod, dep):
                    errors.append(f'{rel}:{line}: {mod} includes "{inc}" ({dep}): '
                                  f'arrows only point down')
            elif '/' in inc:
                top = inc.split('/')[0]
                owner = top + '/h5' if inc.startswith(top + '/h5/') else top
                # a module's h5/ part may use the module's private headers
                if owner != mod and not (mod == owner + '/h5'):
                    errors.append(f'{rel}:{line}: {mod} includes "{inc}", private to {owner}')
    for e in errors:
        print(e)
    print(f'{len(files)} files, {len(errors)} violations')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
