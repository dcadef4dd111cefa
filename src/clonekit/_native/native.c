/*
 * clonekit._native: the only C in clonekit.
 *
 * It holds what cannot be done safely from Python: the raw clone3() wrapped in CPython's fork
 * protocol, the clone-to-exec path, the kernel's verdict on a flag set, and the probe children.
 * Python decides; this file executes.  Code that runs in a child made here is async-signal-safe:
 * raw syscalls, no malloc, no locks, no Python.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clonekit.h"

#ifndef PR_GET_TID_ADDRESS
#define PR_GET_TID_ADDRESS 40
#endif
#ifndef __WALL
#define __WALL 0x40000000
#endif

/* ------------------------------------------------------------------------------------------ */
/* clone(): fork-like, the child keeps running Python                                          */

/* The address of glibc's tid word for the calling thread: glibc registered it with
 * set_tid_address() when the thread started, and its own fork() passes it as child_tid. */
static pid_t *
own_tid_word(void)
{
    pid_t *word = NULL;
    if (prctl(PR_GET_TID_ADDRESS, &word, 0, 0, 0) != 0)
        return NULL;
    return word;
}

static PyObject *
native_clone(PyObject *self, PyObject *args)
{
    unsigned long long flags;
    int exit_signal, cgroup_fd;
    if (!PyArg_ParseTuple(args, "Kii", &flags, &exit_signal, &cgroup_fd))
        return NULL;

    int pidfd = -1;
    pid_t parent_tid = 0;
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = flags | CLONE_PIDFD;
    ca.pidfd = (uintptr_t)&pidfd;
    ca.parent_tid = (uintptr_t)&parent_tid;
    ca.exit_signal = (unsigned)exit_signal;
    if (flags & CLONE_INTO_CGROUP)
        ca.cgroup = (unsigned)cgroup_fd;
    /* Like glibc's fork: the kernel writes the child's tid into the child's copy of glibc's
     * tid word, so pthread_self() and friends describe the child, not the parent. */
    pid_t *tid_word = own_tid_word();
    if (tid_word) {
        ca.flags |= CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
        ca.child_tid = (uintptr_t)tid_word;
    }
    struct robust_list_head *robust = NULL;
    size_t robust_len = 0;
    raw_syscall3(SYS_get_robust_list, 0, (long)&robust, (long)&robust_len);

    PyOS_BeforeFork();
    long pid = raw_syscall2(SYS_clone3, (long)&ca, sizeof ca);
    if (pid == 0) {
        /* The kernel drops the robust-futex registration in a new process; glibc's fork
         * registers it again, so do we. */
        if (robust)
            raw_syscall2(SYS_set_robust_list, (long)robust, (long)robust_len);
        PyOS_AfterFork_Child();
        return Py_BuildValue("(ii)", 0, -1);
    }
    PyOS_AfterFork_Parent();
    if (pid < 0) {
        errno = (int)-pid;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("(li)", pid, pidfd);
}

/* ------------------------------------------------------------------------------------------ */
/* spawn(): clone-to-exec with CLONE_VM|CLONE_VFORK, the child runs no Python                   */

enum spawn_step { STEP_NONE, STEP_EXEC, STEP_CHDIR, STEP_DUP, STEP_SETSID };

struct spawn_plan {
    char *const *exec_paths; /* candidates from the PATH search, tried in order */
    char *const *argv;
    char *const *envp;
    const char *cwd;
    const int *fd_map;       /* pairs (target, source) for the child's stdio */
    int fd_map_len;
    const int *keep_fds;     /* sorted; inherited besides 0..2 when close_fds */
    int keep_len;
    int close_fds;
    int setsid;
    const int *default_signals; /* restored to SIG_DFL (Python ignores SIGPIPE, SIGXFSZ) */
    int default_signals_len;
    sigset_t old_mask;
    /* written by the child, read by the parent once it resumes */
    volatile int error;
    volatile int step;
};

static NOINSTRUMENT void
spawn_fail(struct spawn_plan *plan, int step, long err)
{
    plan->error = (int)-err;
    plan->step = step;
    raw_exit(127);
}

static NOINSTRUMENT int
spawn_child(void *arg)
{
    struct spawn_plan *plan = arg;
    long r;

    for (int i = 0; i < plan->default_signals_len; i++) {
        struct raw_sigaction dfl = { .handler = SIG_DFL };
        raw_syscall4(SYS_rt_sigaction, plan->default_signals[i], (long)&dfl, 0, 8);
    }
    if (plan->setsid && (r = raw_syscall0(SYS_setsid)) < 0)
        spawn_fail(plan, STEP_SETSID, r);
    /* Move sources that sit on 0..2 out of the way first, so one dup2 cannot clobber the
     * source of another (the same dance as _posixsubprocess). */
    int sources[3] = { -1, -1, -1 };
    for (int i = 0; i < plan->fd_map_len; i++) {
        int target = plan->fd_map[2 * i], source = plan->fd_map[2 * i + 1];
        if (source >= 0 && source <= 2 && source != target) {
            r = raw_syscall3(SYS_fcntl, source, F_DUPFD_CLOEXEC, 3);
            if (r < 0)
                spawn_fail(plan, STEP_DUP, r);
            source = (int)r;
        }
        sources[i] = source;
    }
    for (int i = 0; i < plan->fd_map_len; i++) {
        int target = plan->fd_map[2 * i], source = sources[i];
        if (source < 0)
            continue;
        if (source == target)
            r = raw_syscall3(SYS_fcntl, target, F_SETFD, 0);
        else
            r = raw_syscall3(SYS_dup3, source, target, 0);
        if (r < 0)
            spawn_fail(plan, STEP_DUP, r);
    }
    if (plan->close_fds) {
        /* close everything from 3 up except keep_fds, in the gaps between them */
        unsigned int from = 3;
        for (int i = 0; i <= plan->keep_len; i++) {
            unsigned int upto = i < plan->keep_len ? (unsigned int)plan->keep_fds[i] : ~0U;
            if (upto > from)
                raw_syscall3(SYS_close_range, from, upto - 1, 0);
            if (i < plan->keep_len) {
                raw_syscall3(SYS_fcntl, plan->keep_fds[i], F_SETFD, 0);
                from = upto + 1;
            }
        }
    } else {
        for (int i = 0; i < plan->keep_len; i++)
            raw_syscall3(SYS_fcntl, plan->keep_fds[i], F_SETFD, 0);
    }
    if (plan->cwd && (r = raw_syscall1(SYS_chdir, (long)plan->cwd)) < 0)
        spawn_fail(plan, STEP_CHDIR, r);
    raw_syscall4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&plan->old_mask, 0, 8);

    /* like execvp: report the first error that is not "not here", else the last one */
    long first_err = 0, last_err = -ENOENT;
    for (char *const *path = plan->exec_paths; *path; path++) {
        last_err = raw_syscall3(SYS_execve, (long)*path, (long)plan->argv, (long)plan->envp);
        if (last_err != -ENOENT && last_err != -ENOTDIR && first_err == 0)
            first_err = last_err;
    }
    spawn_fail(plan, STEP_EXEC, first_err ? first_err : last_err);
    return 127;
}

extern char **environ;

/* A NULL-terminated vector of the buffers of a PySequence_Fast of bytes (borrowed: valid while
 * the sequence lives); NULL with an exception set.  Free with PyMem_Free. */
char **
bytes_vector(PyObject *seq, const char *what)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    char **vec = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (!vec)
        return (char **)PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%s items must be bytes", what);
            PyMem_Free(vec);
            return NULL;
        }
        vec[i] = PyBytes_AS_STRING(item);
    }
    return vec;
}

static int *
int_vector(PyObject *seq, Py_ssize_t *len)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int *vec = PyMem_Calloc((size_t)n + 1, sizeof(int));
    if (!vec) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            PyMem_Free(vec);
            return NULL;
        }
        vec[i] = (int)v;
    }
    *len = n;
    return vec;
}

static PyObject *
native_spawn(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "exec_paths", "argv", "envp", "cwd", "flags", "exit_signal",
                              "fd_map", "keep_fds", "close_fds", "setsid", "default_signals",
                              "cgroup_fd", NULL };
    PyObject *paths_o, *argv_o, *envp_o, *cwd_o, *fd_map_o, *keep_o, *sigs_o;
    unsigned long long flags;
    int exit_signal, close_fds, do_setsid, cgroup_fd;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOKiOOppOi", kwlist, &paths_o, &argv_o,
                                     &envp_o, &cwd_o, &flags, &exit_signal, &fd_map_o, &keep_o,
                                     &close_fds, &do_setsid, &sigs_o, &cgroup_fd))
        return NULL;

    PyObject *result = NULL, *paths = NULL, *argvs = NULL, *envs = NULL, *fdm = NULL,
             *keep = NULL, *sigs = NULL;
    char **exec_paths = NULL, **argv = NULL, **envp = NULL;
    int *fd_map = NULL, *keep_fds = NULL, *dsigs = NULL;
    Py_ssize_t fd_map_len = 0, keep_len = 0, sigs_len = 0;

    if (!(paths = PySequence_Fast(paths_o, "exec_paths must be a sequence")) ||
        !(argvs = PySequence_Fast(argv_o, "argv must be a sequence")) ||
        !(fdm = PySequence_Fast(fd_map_o, "fd_map must be a sequence")) ||
        !(keep = PySequence_Fast(keep_o, "keep_fds must be a sequence")) ||
        !(sigs = PySequence_Fast(sigs_o, "default_signals must be a sequence")))
        goto out;
    if (envp_o != Py_None && !(envs = PySequence_Fast(envp_o, "envp must be a sequence")))
        goto out;
    if (cwd_o != Py_None && !PyBytes_Check(cwd_o)) {
        PyErr_SetString(PyExc_TypeError, "cwd must be bytes or None");
        goto out;
    }
    if (!(exec_paths = bytes_vector(paths, "exec_paths")) || !(argv = bytes_vector(argvs, "argv")))
        goto out;
    if (envs && !(envp = bytes_vector(envs, "envp")))
        goto out;
    if (!(fd_map = int_vector(fdm, &fd_map_len)) || !(keep_fds = int_vector(keep, &keep_len)) ||
        !(dsigs = int_vector(sigs, &sigs_len)))
        goto out;
    if (fd_map_len > 6) {
        PyErr_SetString(PyExc_ValueError, "fd_map holds at most three (target, source) pairs");
        goto out;
    }

    struct spawn_plan plan = {
        .exec_paths = exec_paths, .argv = argv, .envp = envp ? envp : environ,
        .cwd = cwd_o == Py_None ? NULL : PyBytes_AS_STRING(cwd_o),
        .fd_map = fd_map, .fd_map_len = (int)fd_map_len / 2,
        .keep_fds = keep_fds, .keep_len = (int)keep_len, .close_fds = close_fds,
        .setsid = do_setsid, .default_signals = dsigs, .default_signals_len = (int)sigs_len,
        .error = 0, .step = STEP_NONE,
    };
    int pidfd = -1;
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    ca.pidfd = (uintptr_t)&pidfd;
    ca.exit_signal = (unsigned)exit_signal;
    if (flags & CLONE_INTO_CGROUP)
        ca.cgroup = (unsigned)cgroup_fd;
    /* The child runs on this buffer while we are suspended by CLONE_VFORK. */
    _Alignas(16) char stack[32768];
    ca.stack = (uintptr_t)stack;
    ca.stack_size = sizeof stack;

    sigset_t all;
    sigfillset(&all);
    long pid;
    Py_BEGIN_ALLOW_THREADS
    pthread_sigmask(SIG_SETMASK, &all, &plan.old_mask);
    pid = clone3_run(&ca, spawn_child, &plan);
    pthread_sigmask(SIG_SETMASK, &plan.old_mask, NULL);
    Py_END_ALLOW_THREADS

    if (pid < 0) {
        errno = (int)-pid;
        PyErr_SetFromErrno(PyExc_OSError);
        goto out;
    }
    if (plan.error) {
        /* reap the child that failed before exec, then report like subprocess does */
        siginfo_t si;
        Py_BEGIN_ALLOW_THREADS
        waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL);
        Py_END_ALLOW_THREADS
        close(pidfd);
        result = Py_BuildValue("(iiii)", -1, -1, plan.error, plan.step);
        goto out;
    }
    result = Py_BuildValue("(liii)", pid, pidfd, 0, 0);
out:
    PyMem_Free(exec_paths);
    PyMem_Free(argv);
    PyMem_Free(envp);
    PyMem_Free(fd_map);
    PyMem_Free(keep_fds);
    PyMem_Free(dsigs);
    Py_XDECREF(paths);
    Py_XDECREF(argvs);
    Py_XDECREF(envs);
    Py_XDECREF(fdm);
    Py_XDECREF(keep);
    Py_XDECREF(sigs);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* kernel_verdict(): ask the running kernel itself                                             */


static PyObject *
native_kernel_verdict(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "flags", "via", "exit_signal", "cgroup_fd", "in_place", NULL };
    unsigned long long flags;
    const char *via;
    int exit_signal, cgroup_fd = -1, in_place = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Ksi|ip", kwlist, &flags, &via, &exit_signal,
                                     &cgroup_fd, &in_place))
        return NULL;
    int mode;
    if (strcmp(via, "clone3") == 0)
        mode = VIA_CLONE3;
    else if (strcmp(via, "clone") == 0)
        mode = VIA_CLONE;
    else if (strcmp(via, "unshare") == 0)
        mode = VIA_UNSHARE;
    else {
        PyErr_Format(PyExc_ValueError, "via must be clone3, clone or unshare, not %s", via);
        return NULL;
    }
    struct verdict_call call = { .mode = mode, .flags = flags, .exit_signal = exit_signal,
                                 .cgroup_fd = cgroup_fd };
    long err;
    Py_BEGIN_ALLOW_THREADS
    err = in_place ? verdict_here(&call) : verdict_isolated(&call);
    Py_END_ALLOW_THREADS
    if (err < 0) {
        errno = (int)-err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(err);
}

static PyObject *
native_probe(PyObject *self, PyObject *args)
{
    unsigned long long flags;
    int exit_signal, cgroup_fd = -1;
    if (!PyArg_ParseTuple(args, "Ki|i", &flags, &exit_signal, &cgroup_fd))
        return NULL;
    struct probe_report rep;
    long err;
    Py_BEGIN_ALLOW_THREADS
    err = probe_run(flags, exit_signal, cgroup_fd, &rep);
    Py_END_ALLOW_THREADS
    if (err < 0) {
        errno = (int)-err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return probe_report_dict(&rep);
}

static PyMethodDef native_methods[] = {
    { "clone", native_clone, METH_VARARGS,
      "clone(flags, exit_signal, cgroup_fd) -> (pid, pidfd) in the parent, (0, -1) in the child" },
    { "spawn", (PyCFunction)(void (*)(void))native_spawn, METH_VARARGS | METH_KEYWORDS,
      "spawn(...) -> (pid, pidfd, errno, step): clone(VM|VFORK)+execve" },
    { "kernel_verdict", (PyCFunction)(void (*)(void))native_kernel_verdict,
      METH_VARARGS | METH_KEYWORDS,
      "kernel_verdict(flags, via, exit_signal, cgroup_fd=-1, in_place=False) -> errno or 0" },
    { "probe", native_probe, METH_VARARGS, "probe(flags, exit_signal, cgroup_fd=-1) -> dict of raw observations" },
    { "mount", sys_mount, METH_VARARGS, "mount(source, target, fstype, flags, data)" },
    { "umount2", sys_umount2, METH_VARARGS, "umount2(target, flags=0)" },
    { "pivot_root", sys_pivot_root, METH_VARARGS, "pivot_root(new_root, put_old)" },
    { "setns", sys_setns, METH_VARARGS, "setns(fd, nstype=0)" },
    { "unshare", sys_unshare, METH_VARARGS, "unshare(flags)" },
    { "prctl", sys_prctl, METH_VARARGS, "prctl(option, a2=0, a3=0, a4=0, a5=0) -> int" },
    { "sethostname", sys_sethostname, METH_VARARGS, "sethostname(name)" },
    { "setdomainname", sys_setdomainname, METH_VARARGS, "setdomainname(name)" },
    { "openat2", sys_openat2, METH_VARARGS,
      "openat2(dirfd, path, flags, mode=0, resolve=0) -> fd (always O_CLOEXEC)" },
    { "join_session_keyring", sys_join_session_keyring, METH_VARARGS,
      "join_session_keyring(name=None) -> keyring serial" },
    { "close_range", sys_close_range, METH_VARARGS, "close_range(first, last, flags=0)" },
    { "reset_signals", sys_reset_signals, METH_NOARGS,
      "reset_signals(): every signal's disposition to SIG_DFL, the signal mask empty" },
    { "mount_setattr", sys_mount_setattr, METH_VARARGS,
      "mount_setattr(dirfd, path, flags, attr_set, attr_clr, propagation=0, userns_fd=0)" },
    { "open_tree", sys_open_tree, METH_VARARGS, "open_tree(dirfd, path, flags) -> fd (always O_CLOEXEC)" },
    { "move_mount", sys_move_mount, METH_VARARGS,
      "move_mount(from_dirfd, from_path, to_dirfd, to_path, flags)" },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "clonekit._native", "clonekit's native core", -1, native_methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    PyObject *m = PyModule_Create(&native_module);
    if (!m)
        return NULL;
    if (PyModule_AddFunctions(m, security_methods) || PyModule_AddFunctions(m, bpf_methods) ||
        PyModule_AddFunctions(m, filter_methods) || PyModule_AddFunctions(m, sandbox_methods)) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "STEP_EXEC", STEP_EXEC) || PyModule_AddIntConstant(m, "STEP_CHDIR", STEP_CHDIR) ||
        PyModule_AddIntConstant(m, "STEP_DUP", STEP_DUP) || PyModule_AddIntConstant(m, "STEP_SETSID", STEP_SETSID)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
