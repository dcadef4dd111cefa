"""Confinement: what a container's process may do once it runs.

One module per concern, each a record (already validated: the runtime's spec parsers build them
from config.json, the sandbox API builds them directly) plus the code that applies it:

- ``caps``: the five capability sets (bounding, effective, permitted, inheritable, ambient)
- ``seccomp``: syscall filters compiled with libseccomp, installed last; NOTIFY listeners
- ``devices``: device access rules (v1 devices cgroup, BPF_CGROUP_DEVICE on v2)
- ``rlimits``: resource limits
- ``attrs``: oomScoreAdj, ioPriority, scheduler, personality, execCPUAffinity
- ``lsm``: AppArmor profiles and SELinux labels
- ``confine``: all of them in runc's order, for the container init, ``exec`` and the sandbox

This floor knows nothing of the runtime above it.  Import the module you need
(``from clonekit.security import caps``): the package itself loads nothing, since each
container start pays for every module it imports.
"""
