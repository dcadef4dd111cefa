/* Thin wrappers for syscalls Python's os module lacks (or lacks on 3.11): the runtime and the
 * namespace code call them on their hot path, where importing ctypes would cost milliseconds.
 * No policy here: each raises OSError with the kernel's errno and the path involved. */
#define _GNU_SOURCE
#include "clonekit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

/* struct mount_attr of include/uapi/linux/mount.h (MOUNT_ATTR_SIZE_VER0), spelt out here: the
 * glibc and kernel headers that declare it cannot both be included. */
struct ck_mount_attr {
    unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

static PyObject *fail(const char *path)
{
    if (path)
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    return PyErr_SetFromErrno(PyExc_OSError);
}

#define RUN_OR_FAIL(expr, path)              \
    do {                                     \
        long r_;                             \
        Py_BEGIN_ALLOW_THREADS               \
        r_ = (long)(expr);                   \
        Py_END_ALLOW_THREADS                 \
        if (r_ < 0)                          \
            return fail(path);               \
    } while (0)

PyObject *sys_mount(PyObject *self, PyObject *args)
{
    const char *source, *target, *fstype, *data;
    unsigned long flags;
    if (!PyArg_ParseTuple(args, "zszkz", &source, &target, &fstype, &flags, &data))
        return NULL;
    RUN_OR_FAIL(mount(source, target, fstype, flags, data), target);
    Py_RETURN_NONE;
}

PyObject *sys_umount2(PyObject *self, PyObject *args)
{
    const char *target;
    int flags = 0;
    if (!PyArg_ParseTuple(args, "s|i", &target, &flags))
        return NULL;
    RUN_OR_FAIL(umount2(target, flags), target);
    Py_RETURN_NONE;
}

PyObject *sys_pivot_root(PyObject *self, PyObject *args)
{
    const char *new_root, *put_old;
    if (!PyArg_ParseTuple(args, "ss", &new_root, &put_old))
        return NULL;
    RUN_OR_FAIL(syscall(SYS_pivot_root, new_root, put_old), new_root);
    Py_RETURN_NONE;
}

PyObject *sys_setns(PyObject *self, PyObject *args)
{
    int fd, nstype = 0;
    if (!PyArg_ParseTuple(args, "i|i", &fd, &nstype))
        return NULL;
    RUN_OR_FAIL(setns(fd, nstype), NULL);
    Py_RETURN_NONE;
}

PyObject *sys_unshare(PyObject *self, PyObject *args)
{
    unsigned long long flags;
    if (!PyArg_ParseTuple(args, "K", &flags))
        return NULL;
    RUN_OR_FAIL(syscall(SYS_unshare, flags), NULL);
    Py_RETURN_NONE;
}

PyObject *sys_prctl(PyObject *self, PyObject *args)
{
    int option;
    unsigned long a2 = 0, a3 = 0, a4 = 0, a5 = 0;
    if (!PyArg_ParseTuple(args, "i|kkkk", &option, &a2, &a3, &a4, &a5))
        return NULL;
    long r = prctl(option, a2, a3, a4, a5);
    if (r < 0)
        return fail(NULL);
    return PyLong_FromLong(r);
}

/* sethostname here too: socket's C module (the usual home of sethostname) costs a dlopen of
 * ~0.5 ms on every container start. */
PyObject *sys_sethostname(PyObject *self, PyObject *args)
{
    const char *name;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "s#", &name, &len))
        return NULL;
    RUN_OR_FAIL(sethostname(name, (size_t)len), NULL);
    Py_RETURN_NONE;
}

PyObject *sys_setdomainname(PyObject *self, PyObject *args)
{
    const char *name;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "s#", &name, &len))
        return NULL;
    RUN_OR_FAIL(setdomainname(name, (size_t)len), NULL);
    Py_RETURN_NONE;
}

/* openat2(dirfd, path, flags, mode, resolve) -> fd; resolve holds RESOLVE_* bits such as
 * RESOLVE_IN_ROOT, which keeps every step of the lookup (symlinks and ".." included) inside
 * dirfd: the kernel's answer to the symlink-escape class of container CVEs. */
PyObject *sys_openat2(PyObject *self, PyObject *args)
{
    int dirfd;
    const char *path;
    unsigned long long flags, mode = 0, resolve = 0;
    if (!PyArg_ParseTuple(args, "isK|KK", &dirfd, &path, &flags, &mode, &resolve))
        return NULL;
    struct open_how how = { .flags = flags | O_CLOEXEC, .mode = mode, .resolve = resolve };
    long fd;
    Py_BEGIN_ALLOW_THREADS
    fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    Py_END_ALLOW_THREADS
    if (fd < 0)
        return fail(path);
    return PyLong_FromLong(fd);
}

/* keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a container gets a session keyring of its own */
PyObject *sys_join_session_keyring(PyObject *self, PyObject *args)
{
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|z", &name))
        return NULL;
    long r = syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, name);
    if (r < 0)
        return fail(NULL);
    return PyLong_FromLong(r);
}

/* struct kernel_sigaction of the generic rt_sigaction ABI: glibc's sigaction() refuses the two
 * real-time signals it keeps for itself (32, 33), which a caller may still have left ignored. */
struct ck_kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

PyObject *sys_reset_signals(PyObject *self, PyObject *noargs)
{
    /* every disposition back to SIG_DFL and nothing blocked: what a new program should start
     * with (the runtime is Python, which ignores SIGPIPE and SIGXFSZ, and its caller may have
     * left others ignored, e.g. nohup's SIGHUP) */
    struct ck_kernel_sigaction dfl = { SIG_DFL, 0, NULL, 0 };
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask) < 0 && errno != EINVAL)
            return PyErr_SetFromErrno(PyExc_OSError);
    }
    unsigned long none = 0;
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

PyObject *sys_close_range(PyObject *self, PyObject *args)
{
    unsigned int first, last, flags = 0;
    if (!PyArg_ParseTuple(args, "II|I", &first, &last, &flags))
        return NULL;
    if (syscall(SYS_close_range, first, last, flags) < 0)
        return fail(NULL);
    Py_RETURN_NONE;
}

/* mount_setattr(dirfd, path, flags, attr_set, attr_clr, propagation=0, userns_fd=0) (Linux 5.12):
 * change MOUNT_ATTR_* bits and the propagation of one mount, or with AT_RECURSIVE (0x8000) of the
 * whole subtree in a single atomic step; AT_EMPTY_PATH (0x1000) with path "" names the mount
 * dirfd is on (an O_PATH fd will do). */
PyObject *sys_mount_setattr(PyObject *self, PyObject *args)
{
    int dirfd;
    const char *path;
    unsigned int flags;
    unsigned long long set, clr, propagation = 0, userns_fd = 0;
    if (!PyArg_ParseTuple(args, "isIKK|KK", &dirfd, &path, &flags, &set, &clr, &propagation,
                          &userns_fd))
        return NULL;
    struct ck_mount_attr attr = { .attr_set = set, .attr_clr = clr, .propagation = propagation,
                                  .userns_fd = userns_fd };
    RUN_OR_FAIL(syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof attr),
                *path ? path : NULL);
    Py_RETURN_NONE;
}

/* open_tree(dirfd, path, flags) -> fd (Linux 5.2; always O_CLOEXEC): with OPEN_TREE_CLONE (1) a
 * detached copy of the mount at path (of its whole subtree with AT_RECURSIVE), which lives as long
 * as the fd unless move_mount attaches it; without, an O_PATH-like fd of the mount itself. */
PyObject *sys_open_tree(PyObject *self, PyObject *args)
{
    int dirfd;
    const char *path;
    unsigned int flags;
    if (!PyArg_ParseTuple(args, "isI", &dirfd, &path, &flags))
        return NULL;
    long fd;
    Py_BEGIN_ALLOW_THREADS
    fd = syscall(SYS_open_tree, dirfd, path, flags | O_CLOEXEC);
    Py_END_ALLOW_THREADS
    if (fd < 0)
        return fail(*path ? path : NULL);
    return PyLong_FromLong(fd);
}

/* move_mount(from_dirfd, from_path, to_dirfd, to_path, flags) (Linux 5.2): attach a detached tree
 * from open_tree, or move a mount; MOVE_MOUNT_F_EMPTY_PATH (4) / MOVE_MOUNT_T_EMPTY_PATH (0x40)
 * name the mount / the destination by their fds alone. */
PyObject *sys_move_mount(PyObject *self, PyObject *args)
{
    int from_dirfd, to_dirfd;
    const char *from_path, *to_path;
    unsigned int flags;
    if (!PyArg_ParseTuple(args, "isisI", &from_dirfd, &from_path, &to_dirfd, &to_path, &flags))
        return NULL;
    RUN_OR_FAIL(syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags),
                *to_path ? to_path : (*from_path ? from_path : NULL));
    Py_RETURN_NONE;
}
