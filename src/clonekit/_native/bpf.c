/* BPF_CGROUP_DEVICE programs: device rules on cgroup v2.
 *
 * Two thin wrappers of bpf(2): load a program of type BPF_PROG_TYPE_CGROUP_DEVICE from its
 * instructions, and attach a program to a cgroup directory.  No policy here: security/devices.py
 * generates the instructions and decides where they go.  A refused load raises OSError whose
 * text carries the kernel verifier's log (the only place that says *why*). */
#define _GNU_SOURCE
#include "clonekit.h"

#include <errno.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BPF_LOG_SIZE (64 * 1024)

static long ck_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

/* Raise OSError(errno, "<strerror>: <verifier log>") when the log says something. */
static PyObject *load_error(int err, const char *log)
{
    size_t n = strlen(log);
    while (n > 0 && (log[n - 1] == '\n' || log[n - 1] == ' '))
        n--;
    if (n == 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *value = Py_BuildValue("(is#)", err, log, (Py_ssize_t)n);
    if (value != NULL) {
        PyErr_SetObject(PyExc_OSError, value);
        Py_DECREF(value);
    }
    return NULL;
}

static PyObject *bpf_prog_load_cgroup_device(PyObject *self, PyObject *args)
{
    Py_buffer insns;
    if (!PyArg_ParseTuple(args, "y*", &insns))
        return NULL;
    if (insns.len == 0 || insns.len % sizeof(struct bpf_insn) != 0) {
        PyBuffer_Release(&insns);
        PyErr_SetString(PyExc_ValueError, "instructions must be a non-empty multiple of 8 bytes");
        return NULL;
    }
    char *log = PyMem_Calloc(1, BPF_LOG_SIZE);
    if (log == NULL) {
        PyBuffer_Release(&insns);
        return PyErr_NoMemory();
    }
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (unsigned long long)(uintptr_t)insns.buf;
    attr.insn_cnt = (unsigned int)(insns.len / sizeof(struct bpf_insn));
    attr.license = (unsigned long long)(uintptr_t)"GPL";
    /* first without a log (the verifier is faster without one); again with it if refused */
    long fd;
    Py_BEGIN_ALLOW_THREADS
    fd = ck_bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0 && errno != EPERM && errno != ENOSYS) {
        attr.log_buf = (unsigned long long)(uintptr_t)log;
        attr.log_size = BPF_LOG_SIZE;
        attr.log_level = 1;
        fd = ck_bpf(BPF_PROG_LOAD, &attr);
    }
    Py_END_ALLOW_THREADS
    int err = errno;
    PyBuffer_Release(&insns);
    PyObject *result = fd < 0 ? load_error(err, log) : PyLong_FromLong(fd);
    PyMem_Free(log);
    if (result == NULL && fd >= 0)
        close((int)fd);
    return result;
}

static PyObject *bpf_prog_attach(PyObject *self, PyObject *args)
{
    int prog_fd, cgroup_fd;
    unsigned int attach_type, flags;
    if (!PyArg_ParseTuple(args, "iiII", &prog_fd, &cgroup_fd, &attach_type, &flags))
        return NULL;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (unsigned int)cgroup_fd;
    attr.attach_bpf_fd = (unsigned int)prog_fd;
    attr.attach_type = attach_type;
    attr.attach_flags = flags;
    if (ck_bpf(BPF_PROG_ATTACH, &attr) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

PyMethodDef bpf_methods[] = {
    { "bpf_prog_load_cgroup_device", bpf_prog_load_cgroup_device, METH_VARARGS,
      "bpf_prog_load_cgroup_device(insns: bytes, /) -> int: load a BPF_PROG_TYPE_CGROUP_DEVICE "
      "program (a new O_CLOEXEC fd); OSError carries the verifier's log when it refuses." },
    { "bpf_prog_attach", bpf_prog_attach, METH_VARARGS,
      "bpf_prog_attach(prog_fd, cgroup_fd, attach_type, flags, /): BPF_PROG_ATTACH." },
    { NULL, NULL, 0, NULL },
};
