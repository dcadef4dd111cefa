"""The ``CLONE_*`` bits of ``include/uapi/linux/sched.h`` as plain ints.

:class:`clonekit.CloneFlag` is built from these.  Code on the per-container path uses them
directly: ``enum`` (with the ``functools`` and ``collections`` it pulls in) costs milliseconds of
import, and the runtime is started once per container.
"""

NEWTIME = 0x00000080
VM = 0x00000100
FS = 0x00000200
FILES = 0x00000400
SIGHAND = 0x00000800
PIDFD = 0x00001000
PTRACE = 0x00002000
VFORK = 0x00004000
PARENT = 0x00008000
THREAD = 0x00010000
NEWNS = 0x00020000
SYSVSEM = 0x00040000
SETTLS = 0x00080000
PARENT_SETTID = 0x00100000
CHILD_CLEARTID = 0x00200000
DETACHED = 0x00400000
UNTRACED = 0x00800000
CHILD_SETTID = 0x01000000
NEWCGROUP = 0x02000000
NEWUTS = 0x04000000
NEWIPC = 0x08000000
NEWUSER = 0x10000000
NEWPID = 0x20000000
NEWNET = 0x40000000
IO = 0x80000000
CLEAR_SIGHAND = 0x100000000
INTO_CGROUP = 0x200000000

#: Every defined bit.
ALL = (
    NEWTIME
    | VM
    | FS
    | FILES
    | SIGHAND
    | PIDFD
    | PTRACE
    | VFORK
    | PARENT
    | THREAD
    | NEWNS
    | SYSVSEM
    | SETTLS
    | PARENT_SETTID
    | CHILD_CLEARTID
    | DETACHED
    | UNTRACED
    | CHILD_SETTID
    | NEWCGROUP
    | NEWUTS
    | NEWIPC
    | NEWUSER
    | NEWPID
    | NEWNET
    | IO
    | CLEAR_SIGHAND
    | INTO_CGROUP
)
#: The namespace bits (a new namespace each).
NAMESPACES = NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
