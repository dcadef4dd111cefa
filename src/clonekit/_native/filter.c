/* seccomp: install a compiled BPF filter (compiled by clonekit._seccomp), pidfd_getfd.
 *
 * The program arrives as bytes, already compiled and patched in Python; installing it needs no
 * libseccomp, so the container's init does not load it. */
#define _GNU_SOURCE
#include "clonekit.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog): the listener fd with NEW_LISTENER, else -1. */
static PyObject *
filter_seccomp_install(PyObject *self, PyObject *args)
{
    Py_buffer program;
    unsigned int flags;
    if (!PyArg_ParseTuple(args, "y*I", &program, &flags))
        return NULL;
    size_t count = (size_t)program.len / sizeof(struct sock_filter);
    if (program.len == 0 || program.len % sizeof(struct sock_filter) || count > BPF_MAXINSNS) {
        PyBuffer_Release(&program);
        errno = EINVAL;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    struct sock_fprog prog = { .len = (unsigned short)count, .filter = program.buf };
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    int err = errno;
    PyBuffer_Release(&program);
    if (rc < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(flags & SECCOMP_FILTER_FLAG_NEW_LISTENER ? rc : -1);
}

/* A duplicate (close-on-exec) of another process's fd, through its pidfd. */
static PyObject *
filter_pidfd_getfd(PyObject *self, PyObject *args)
{
    int pidfd, fd;
    if (!PyArg_ParseTuple(args, "ii", &pidfd, &fd))
        return NULL;
    long rc = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    if (rc < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(rc);
}

PyMethodDef filter_methods[] = {
    { "seccomp_install", filter_seccomp_install, METH_VARARGS,
      "seccomp_install(bpf, flags) -> listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else -1" },
    { "pidfd_getfd", filter_pidfd_getfd, METH_VARARGS,
      "pidfd_getfd(pidfd, fd) -> a close-on-exec duplicate of the process's fd" },
    { NULL, NULL, 0, NULL },
};
