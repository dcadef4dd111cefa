/* Confinement syscalls the os module lacks: capset, prlimit (without importing `resource`),
 * ioprio_set, sched_setattr (every policy, SCHED_DEADLINE included), personality and the NUMA
 * memory policy (set_mempolicy/get_mempolicy).
 * No policy here: security/ decides, these raise OSError with the kernel's errno. */
#define _GNU_SOURCE
#include "clonekit.h"

#include <errno.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdint.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct sched_attr of include/uapi/linux/sched/types.h (SCHED_ATTR_SIZE_VER1) */
struct ck_sched_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
    uint32_t sched_util_min, sched_util_max;
};

static PyObject *sec_capset(PyObject *self, PyObject *args)
{
    unsigned long long eff, prm, inh;
    if (!PyArg_ParseTuple(args, "KKK", &eff, &prm, &inh))
        return NULL;
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2] = {
        { (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
        { (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
    };
    if (syscall(SYS_capset, &hdr, data) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *sec_capget(PyObject *self, PyObject *args)
{
    int pid = 0;
    if (!PyArg_ParseTuple(args, "|i", &pid))
        return NULL;
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, pid };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return Py_BuildValue("KKK",
                         (unsigned long long)data[0].effective | (unsigned long long)data[1].effective << 32,
                         (unsigned long long)data[0].permitted | (unsigned long long)data[1].permitted << 32,
                         (unsigned long long)data[0].inheritable |
                             (unsigned long long)data[1].inheritable << 32);
}

static PyObject *sec_prlimit(PyObject *self, PyObject *args)
{
    int pid, resource;
    unsigned long long soft, hard;
    if (!PyArg_ParseTuple(args, "iiKK", &pid, &resource, &soft, &hard))
        return NULL;
    struct rlimit64 lim = { soft, hard };
    if (prlimit64(pid, resource, &lim, NULL) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *sec_ioprio_set(PyObject *self, PyObject *args)
{
    int which, who, prio;
    if (!PyArg_ParseTuple(args, "iii", &which, &who, &prio))
        return NULL;
    if (syscall(SYS_ioprio_set, which, who, prio) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *sec_sched_setattr(PyObject *self, PyObject *args)
{
    int pid;
    struct ck_sched_attr a = { .size = sizeof a };
    if (!PyArg_ParseTuple(args, "iIKiIKKK", &pid, &a.sched_policy, &a.sched_flags, &a.sched_nice,
                          &a.sched_priority, &a.sched_runtime, &a.sched_deadline, &a.sched_period))
        return NULL;
    if (syscall(SYS_sched_setattr, pid, &a, 0) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *sec_personality(PyObject *self, PyObject *args)
{
    unsigned long persona;
    if (!PyArg_ParseTuple(args, "k", &persona))
        return NULL;
    int r = personality(persona);
    if (r < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(r);
}

/* set_mempolicy(mode | flags, nodemask, maxnode): the mask as little-endian bytes (bit n = node
 * n, as the kernel reads an unsigned long array on x86/arm); maxnode is one more than its bits,
 * the kernel's off-by-one. */
static PyObject *sec_set_mempolicy(PyObject *self, PyObject *args)
{
    int mode;
    Py_buffer mask;
    if (!PyArg_ParseTuple(args, "iy*", &mode, &mask))
        return NULL;
    unsigned long words[(mask.len + sizeof(unsigned long) - 1) / sizeof(unsigned long) + 1];
    memset(words, 0, sizeof words);
    memcpy(words, mask.buf, mask.len);
    unsigned long maxnode = mask.len ? (unsigned long)mask.len * 8 + 1 : 0;
    long r = syscall(SYS_set_mempolicy, mode, mask.len ? words : NULL, maxnode);
    PyBuffer_Release(&mask);
    if (r < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* get_mempolicy of the calling thread -> (mode | flags, nodemask bytes of 1024 nodes) */
static PyObject *sec_get_mempolicy(PyObject *self, PyObject *args)
{
    int mode = 0;
    unsigned long words[1024 / (8 * sizeof(unsigned long))] = { 0 };
    if (syscall(SYS_get_mempolicy, &mode, words, (unsigned long)sizeof words * 8, NULL, 0UL) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return Py_BuildValue("iy#", mode, (const char *)words, (Py_ssize_t)sizeof words);
}

/* link_up(name): IFF_UP on an interface of this network namespace (SIOCSIFFLAGS), for the
 * loopback of a new one; here rather than through rtnetlink from Python, which would import
 * _socket on every container start. */
static PyObject *sec_link_up(PyObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name))
        return NULL;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (strlen(name) >= IFNAMSIZ) {
        errno = EINVAL;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    strcpy(ifr.ifr_name, name);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(fd);
    if (r < 0) {
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

PyMethodDef security_methods[] = {
    { "capset", sec_capset, METH_VARARGS, "capset(effective, permitted, inheritable) for this thread" },
    { "capget", sec_capget, METH_VARARGS, "capget(pid=0) -> (effective, permitted, inheritable)" },
    { "prlimit", sec_prlimit, METH_VARARGS, "prlimit(pid, resource, soft, hard)" },
    { "ioprio_set", sec_ioprio_set, METH_VARARGS, "ioprio_set(which, who, ioprio)" },
    { "sched_setattr", sec_sched_setattr, METH_VARARGS,
      "sched_setattr(pid, policy, flags, nice, priority, runtime, deadline, period)" },
    { "personality", sec_personality, METH_VARARGS, "personality(persona) -> previous persona" },
    { "set_mempolicy", sec_set_mempolicy, METH_VARARGS, "set_mempolicy(mode_and_flags, nodemask_bytes)" },
    { "get_mempolicy", sec_get_mempolicy, METH_NOARGS, "get_mempolicy() -> (mode_and_flags, nodemask_bytes)" },
    { "link_up", sec_link_up, METH_VARARGS, "link_up(name): set IFF_UP on a network interface" },
    { NULL, NULL, 0, NULL },
};
