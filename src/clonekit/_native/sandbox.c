/* sandbox_spawn(): clone3 into new namespaces, run a list of raw syscalls prepared by Python,
 * then execve -- the sandbox's whole child, with no Python and no libc in it.
 *
 * Python (clonekit.sandbox) decides every step once per Sandbox: the mount tree, the id maps,
 * the capability drops, no-new-privs, the seccomp program, ...; this file only executes them.
 * An op is (nr, ok_errno, arg0, ..., arg5).  An arg is an int, a bytes object (passed as a
 * pointer to its buffer: the kernel must only read it), (0, i) for the result of op i (an fd
 * an earlier op opened), or (1, program) for a struct sock_fprog of a seccomp program.  A
 * failing op ends the child; its index and errno come back to the parent, which names the step.
 * ok_errno: an errno that counts as success for this op (-1: any).
 *
 * The child shares the parent's memory (CLONE_VM|CLONE_VFORK: nothing is copied, the parent
 * sleeps until the exec) and runs on a buffer of this call's stack: raw syscalls only. */
#define _GNU_SOURCE
#include "clonekit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef __WALL
#define __WALL 0x40000000
#endif

#define SANDBOX_MAX_ARGS 6

struct sandbox_op {
    long nr;
    long ok_errno;
    long args[SANDBOX_MAX_ARGS];
    signed char ref[SANDBOX_MAX_ARGS]; /* 1: args[i] is the index of an earlier op */
};

struct sandbox_plan {
    struct sandbox_op *ops;
    long *results;
    int nops;
    char *const *exec_paths;
    char *const *argv;
    char *const *envp;
    /* written by the child, read by the parent once it resumes */
    volatile int error;
    volatile int step;
};

static NOINSTRUMENT void
sandbox_fail(struct sandbox_plan *plan, int step, long err)
{
    plan->error = (int)-err;
    plan->step = step;
    raw_exit_group(127);
}

static NOINSTRUMENT int
sandbox_child(void *arg)
{
    struct sandbox_plan *plan = arg;
    /* every disposition to the default: CLONE_CLEAR_SIGHAND keeps ignored signals ignored (and
     * exec too), and the caller may ignore any (Python ignores SIGPIPE and SIGXFSZ) */
    for (int sig = 1; sig <= 64; sig++) {
        struct raw_sigaction act = { .handler = SIG_DFL };
        if (sig != SIGKILL && sig != SIGSTOP)
            raw_syscall4(SYS_rt_sigaction, sig, (long)&act, 0, 8);
    }
    for (int i = 0; i < plan->nops; i++) {
        struct sandbox_op *op = &plan->ops[i];
        long a[SANDBOX_MAX_ARGS];
        for (int j = 0; j < SANDBOX_MAX_ARGS; j++)
            a[j] = op->ref[j] ? plan->results[op->args[j]] : op->args[j];
        long r = raw_syscall6(op->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r < 0 && r > -4096 && op->ok_errno != -1 && -r != op->ok_errno)
            sandbox_fail(plan, i, r);
        plan->results[i] = r;
    }
    unsigned long empty = 0;
    raw_syscall4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&empty, 0, 8);
    /* like execvp: report the first error that is not "not here", else the last one */
    long first_err = 0, last_err = -ENOENT;
    for (char *const *path = plan->exec_paths; *path; path++) {
        last_err = raw_syscall3(SYS_execve, (long)*path, (long)plan->argv, (long)plan->envp);
        if (last_err != -ENOENT && last_err != -ENOTDIR && first_err == 0)
            first_err = last_err;
    }
    sandbox_fail(plan, plan->nops, first_err ? first_err : last_err);
    return 127;
}

/* One op's argument.  fprogs has room for every (1, program) arg of the call. */
static int
parse_arg(PyObject *o, struct sandbox_op *op, int j, int index, struct sock_fprog *fprog)
{
    if (PyLong_Check(o)) {
        op->args[j] = (long)PyLong_AsUnsignedLongMask(o);
        return PyErr_Occurred() ? -1 : 0;
    }
    if (PyBytes_Check(o)) {
        op->args[j] = (long)PyBytes_AS_STRING(o);
        return 0;
    }
    if (PyTuple_Check(o) && PyTuple_GET_SIZE(o) == 2) {
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(o, 0));
        PyObject *value = PyTuple_GET_ITEM(o, 1);
        if (kind == 0 && PyLong_Check(value)) {
            long ref = PyLong_AsLong(value);
            if (ref < 0 || ref >= index) {
                PyErr_Format(PyExc_ValueError, "op %d refers to op %ld, which is not before it", index, ref);
                return -1;
            }
            op->args[j] = ref;
            op->ref[j] = 1;
            return 0;
        }
        if (kind == 1 && PyBytes_Check(value) && fprog) {
            Py_ssize_t len = PyBytes_GET_SIZE(value);
            if (len == 0 || len % (Py_ssize_t)sizeof(struct sock_filter) ||
                len / (Py_ssize_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
                PyErr_SetString(PyExc_ValueError, "a seccomp program is 1..4096 struct sock_filter");
                return -1;
            }
            fprog->len = (unsigned short)(len / (Py_ssize_t)sizeof(struct sock_filter));
            fprog->filter = (struct sock_filter *)PyBytes_AS_STRING(value);
            op->args[j] = (long)fprog;
            return 1;
        }
    }
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "op %d arg %d: int, bytes, (0, op index) or (1, seccomp program)",
                     index, j);
    return -1;
}

static PyObject *
sandbox_spawn(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "flags", "ops", "exec_paths", "argv", "envp", "cgroup_fd", NULL };
    unsigned long long flags;
    PyObject *ops_o, *paths_o, *argv_o, *envp_o;
    int cgroup_fd;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "KOOOOi", kwlist, &flags, &ops_o, &paths_o, &argv_o,
                                     &envp_o, &cgroup_fd))
        return NULL;

    PyObject *result = NULL, *ops_seq = NULL, *paths = NULL, *argvs = NULL, *envs = NULL;
    char **exec_paths = NULL, **argv = NULL, **envp = NULL;
    struct sandbox_op *ops = NULL;
    long *results = NULL;
    struct sock_fprog *fprogs = NULL;

    if (!(ops_seq = PySequence_Fast(ops_o, "ops must be a sequence")) ||
        !(paths = PySequence_Fast(paths_o, "exec_paths must be a sequence")) ||
        !(argvs = PySequence_Fast(argv_o, "argv must be a sequence")) ||
        !(envs = PySequence_Fast(envp_o, "envp must be a sequence")))
        goto out;
    if (!(exec_paths = bytes_vector(paths, "exec_paths")) || !(argv = bytes_vector(argvs, "argv")) ||
        !(envp = bytes_vector(envs, "envp")))
        goto out;
    Py_ssize_t nops = PySequence_Fast_GET_SIZE(ops_seq);
    ops = PyMem_Calloc((size_t)nops + 1, sizeof *ops);
    results = PyMem_Calloc((size_t)nops + 1, sizeof *results);
    fprogs = PyMem_Calloc((size_t)nops + 1, sizeof *fprogs);
    if (!ops || !results || !fprogs) {
        PyErr_NoMemory();
        goto out;
    }
    int nfprogs = 0;
    for (Py_ssize_t i = 0; i < nops; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(ops_seq, i);
        Py_ssize_t n = PyTuple_Check(t) ? PyTuple_GET_SIZE(t) : -1;
        if (n < 2 || n > 2 + SANDBOX_MAX_ARGS) {
            PyErr_Format(PyExc_TypeError, "op %zd must be a tuple (nr, ok_errno, *args) of up to %d args",
                         i, SANDBOX_MAX_ARGS);
            goto out;
        }
        ops[i].nr = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
        ops[i].ok_errno = PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
        if (PyErr_Occurred())
            goto out;
        for (Py_ssize_t j = 2; j < n; j++) {
            int r = parse_arg(PyTuple_GET_ITEM(t, j), &ops[i], (int)(j - 2), (int)i, &fprogs[nfprogs]);
            if (r < 0)
                goto out;
            nfprogs += r;
        }
    }

    struct sandbox_plan plan = {
        .ops = ops, .results = results, .nops = (int)nops, .exec_paths = exec_paths,
        .argv = argv, .envp = envp, .error = 0, .step = -1,
    };
    int pidfd = -1;
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    ca.pidfd = (uintptr_t)&pidfd;
    ca.exit_signal = SIGCHLD;
    if (flags & CLONE_INTO_CGROUP)
        ca.cgroup = (unsigned)cgroup_fd;
    _Alignas(16) char stack[32768];
    ca.stack = (uintptr_t)stack;
    ca.stack_size = sizeof stack;

    sigset_t all, old;
    sigfillset(&all);
    long pid;
    Py_BEGIN_ALLOW_THREADS
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = clone3_run(&ca, sandbox_child, &plan);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    Py_END_ALLOW_THREADS

    if (pid < 0) {
        errno = (int)-pid;
        PyErr_SetFromErrno(PyExc_OSError);
        goto out;
    }
    if (plan.error) {
        siginfo_t si;
        Py_BEGIN_ALLOW_THREADS
        waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL);
        Py_END_ALLOW_THREADS
        close(pidfd);
        result = Py_BuildValue("(iiii)", -1, -1, plan.error, plan.step);
        goto out;
    }
    result = Py_BuildValue("(liii)", pid, pidfd, 0, -1);
out:
    PyMem_Free(exec_paths);
    PyMem_Free(argv);
    PyMem_Free(envp);
    PyMem_Free(ops);
    PyMem_Free(results);
    PyMem_Free(fprogs);
    Py_XDECREF(ops_seq);
    Py_XDECREF(paths);
    Py_XDECREF(argvs);
    Py_XDECREF(envs);
    return result;
}

/* A fresh network namespace, as an fd, for a later run to setns() into: made by this thread
 * (unshare), which then goes back to its own.  Making one costs ~0.6 ms in the kernel; the
 * sandbox makes the next run's while the current run's command executes. */
static PyObject *
sandbox_new_netns(PyObject *self, PyObject *noargs)
{
    int fd = -1, err = 0, stranded = 0;
    Py_BEGIN_ALLOW_THREADS
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) {
        err = errno;
    } else {
        if (unshare(CLONE_NEWNET) < 0) {
            err = errno;
        } else {
            fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                err = errno;
            if (setns(home, CLONE_NEWNET) < 0) {
                err = errno;
                stranded = 1;
            }
        }
        close(home);
    }
    Py_END_ALLOW_THREADS
    if (stranded) {
        if (fd >= 0)
            close(fd);
        errno = err;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "setns back to the thread's own network namespace");
    }
    if (fd < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(fd);
}

#ifndef SYS_fsopen
#define SYS_fsopen 430
#define SYS_fsconfig 431
#define SYS_fsmount 432
#endif

/* A new filesystem as a detached mount (fsopen + fsconfig + fsmount): nothing is mounted
 * anywhere; the fd is the mount, to build a tree in and clone per run.  options: (key, value)
 * string pairs; attrs: MOUNT_ATTR_* of the mount. */
static PyObject *
sandbox_fsmount(PyObject *self, PyObject *args)
{
    const char *fstype;
    PyObject *options;
    unsigned int attrs;
    if (!PyArg_ParseTuple(args, "sOI", &fstype, &options, &attrs))
        return NULL;
    PyObject *seq = PySequence_Fast(options, "options must be a sequence of (key, value)");
    if (!seq)
        return NULL;
    long fs = syscall(SYS_fsopen, fstype, 1 /* FSOPEN_CLOEXEC */);
    if (fs < 0) {
        Py_DECREF(seq);
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "fsopen");
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        const char *key, *value;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "ss", &key, &value)) {
            close((int)fs);
            Py_DECREF(seq);
            return NULL;
        }
        if (syscall(SYS_fsconfig, fs, 1 /* FSCONFIG_SET_STRING */, key, value, 0) < 0) {
            int err = errno;
            close((int)fs);
            Py_DECREF(seq);
            errno = err;
            return PyErr_SetFromErrnoWithFilename(PyExc_OSError, key);
        }
    }
    Py_DECREF(seq);
    long fd = -1;
    if (syscall(SYS_fsconfig, fs, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0) == 0)
        fd = syscall(SYS_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */, attrs);
    int err = errno;
    close((int)fs);
    if (fd < 0) {
        errno = err;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "fsmount");
    }
    return PyLong_FromLong(fd);
}

PyMethodDef sandbox_methods[] = {
    { "sandbox_fsmount", sandbox_fsmount, METH_VARARGS,
      "sandbox_fsmount(fstype, [(key, value), ...], mount_attrs) -> fd of a detached new filesystem" },
    { "sandbox_new_netns", sandbox_new_netns, METH_NOARGS,
      "sandbox_new_netns() -> fd of a new, empty network namespace (the calling thread stays in its own)" },
    { "sandbox_spawn", (PyCFunction)(void (*)(void))sandbox_spawn, METH_VARARGS | METH_KEYWORDS,
      "sandbox_spawn(flags, ops, exec_paths, argv, envp, cgroup_fd) -> (pid, pidfd, errno, step):\n"
      "clone3(flags|VM|VFORK|PIDFD), the ops as raw syscalls in the child, then execve" },
    { NULL, NULL, 0, NULL },
};
