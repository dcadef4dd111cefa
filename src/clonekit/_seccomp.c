/*
 * clonekit._seccomp: compile a seccomp rule set into classic BPF with libseccomp.
 *
 * A module of its own, linked with -lseccomp, so that clonekit._native (loaded by every CLI
 * start) does not pull libseccomp in when no filter is configured.  Policy stays in Python
 * (clonekit.security.seccomp decides which rules, which actions, which flags, and patches the
 * program); this file only drives libseccomp and hands back the program's bytes.  It never
 * loads a filter: clonekit._native.seccomp_install does that, in the container's init.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <errno.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* An OSError whose errno is libseccomp's (it returns -errno) and whose text says what was
 * being done, so the caller can name the rule in its own message. */
static PyObject *
fail(int err, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    PyObject *args = Py_BuildValue("(is)", err, what);
    if (args) {
        PyErr_SetObject(PyExc_OSError, args);
        Py_DECREF(args);
    }
    return NULL;
}

/* One condition, (index, op, value, value_two) from Python, as libseccomp's struct. */
static int
read_condition(PyObject *item, struct scmp_arg_cmp *cmp)
{
    unsigned int index;
    int op;
    unsigned long long a, b;
    if (!PyArg_ParseTuple(item, "IiKK", &index, &op, &a, &b))
        return -1;
    cmp->arg = index;
    cmp->op = (enum scmp_compare)op;
    cmp->datum_a = a;
    cmp->datum_b = b;
    return 0;
}

/* rule = (name, action, ((index, op, value, value_two), ...)).  Returns 1 if added, 0 if the
 * name is unknown to libseccomp (skipped, as runc does), -1 with an exception set. */
static int
add_rule(scmp_filter_ctx ctx, PyObject *rule, Py_ssize_t position)
{
    const char *name;
    unsigned int action;
    PyObject *conds;
    if (!PyArg_ParseTuple(rule, "sIO!", &name, &action, &PyTuple_Type, &conds))
        return -1;
    /* the native number; libseccomp maps it by name onto every other architecture of the
     * filter (and leaves the rule out where that architecture has no such syscall) */
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0;
    struct scmp_arg_cmp cmp[6];
    Py_ssize_t n = PyTuple_GET_SIZE(conds);
    if (n > 6) {
        PyErr_Format(PyExc_ValueError, "rule %zd (%s): %zd conditions, a syscall has 6 arguments",
                     position, name, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (read_condition(PyTuple_GET_ITEM(conds, i), &cmp[i]) < 0)
            return -1;
    int rc = seccomp_rule_add_array(ctx, action, nr, (unsigned int)n, cmp);
    if (rc < 0) {
        fail(-rc, "libseccomp refused rule %zd (syscall %s, action %#x, %zd conditions)",
             position, name, action, n);
        return -1;
    }
    return 1;
}

/* The filter as classic BPF, in host byte order, read back from a memfd (libseccomp 2.5 can
 * only export to a file descriptor). */
static PyObject *
export_program(scmp_filter_ctx ctx)
{
    int fd = memfd_create("clonekit-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return fail(errno, "memfd_create for the exported filter");
    PyObject *out = NULL;
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0) {
        fail(-rc, "seccomp_export_bpf");
        goto done;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        fail(errno, "fstat of the exported filter");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, st.st_size);
    if (!out)
        goto done;
    char *buf = PyBytes_AS_STRING(out);
    off_t got = 0;
    while (got < st.st_size) {
        ssize_t r = pread(fd, buf + got, (size_t)(st.st_size - got), got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            Py_CLEAR(out);
            fail(r < 0 ? errno : EIO, "reading back the exported filter");
            goto done;
        }
        got += r;
    }
done:
    close(fd);
    return out;
}

static PyObject *
seccomp_compile(PyObject *self, PyObject *args)
{
    unsigned int default_action;
    PyObject *arches, *rules;
    int optimize;
    if (!PyArg_ParseTuple(args, "IO!O!i", &default_action, &PyTuple_Type, &arches,
                          &PyTuple_Type, &rules, &optimize))
        return NULL;

    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (!ctx)
        return fail(EINVAL, "seccomp_init with default action %#x", default_action);
    PyObject *result = NULL, *unknown = PyList_New(0);
    if (!unknown)
        goto done;
    int rc;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(arches); i++) {
        unsigned long token = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(arches, i));
        if (PyErr_Occurred())
            goto done;
        rc = seccomp_arch_add(ctx, (uint32_t)token);
        if (rc < 0 && rc != -EEXIST) { /* EEXIST: the native one, already there */
            fail(-rc, "seccomp_arch_add %#lx", token);
            goto done;
        }
    }
    /* libseccomp's binary tree (level 2) is only worth it on long rule sets, and 2.5.4
     * misbehaves with it on an empty one; Python decides. */
    if (optimize > 1 && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0) {
        fail(-rc, "seccomp_attr_set SCMP_FLTATR_CTL_OPTIMIZE");
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(rules); i++) {
        PyObject *rule = PyTuple_GET_ITEM(rules, i);
        if (!PyTuple_Check(rule) || PyTuple_GET_SIZE(rule) != 3) {
            PyErr_Format(PyExc_TypeError, "rule %zd: expected (name, action, conditions)", i);
            goto done;
        }
        int added = add_rule(ctx, rule, i);
        if (added < 0)
            goto done;
        if (added == 0 && PyList_Append(unknown, PyTuple_GET_ITEM(rule, 0)) < 0)
            goto done;
    }
    PyObject *program = export_program(ctx);
    if (program) {
        result = Py_BuildValue("(NN)", program, PyList_AsTuple(unknown));
    }
done:
    Py_XDECREF(unknown);
    seccomp_release(ctx);
    return result;
}

/* For each architecture token, the largest syscall number among names (-1: none known there).
 * The ENOSYS patch needs it: numbers above it are newer than the profile. */
static PyObject *
seccomp_max_syscalls(PyObject *self, PyObject *args)
{
    PyObject *arches, *names;
    if (!PyArg_ParseTuple(args, "O!O!", &PyTuple_Type, &arches, &PyTuple_Type, &names))
        return NULL;
    PyObject *out = PyTuple_New(PyTuple_GET_SIZE(arches));
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(arches); i++) {
        unsigned long token = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(arches, i));
        if (PyErr_Occurred())
            goto fail;
        long best = -1;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(names); j++) {
            const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(names, j));
            if (!name)
                goto fail;
            /* negative: unknown, or a pseudo-syscall that does not exist on this arch */
            int nr = seccomp_syscall_resolve_name_arch((uint32_t)token, name);
            if (nr >= 0 && nr > best)
                best = nr;
        }
        PyTuple_SET_ITEM(out, i, PyLong_FromLong(best));
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
seccomp_resolve(PyObject *self, PyObject *args)
{
    const char *name;
    unsigned int token = SCMP_ARCH_NATIVE;
    if (!PyArg_ParseTuple(args, "s|I", &name, &token))
        return NULL;
    return PyLong_FromLong(seccomp_syscall_resolve_name_arch(token, name));
}

static PyObject *
seccomp_arch_token(PyObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name))
        return NULL;
    return PyLong_FromUnsignedLong(seccomp_arch_resolve_name(name));
}

static PyObject *
seccomp_native_arch(PyObject *self, PyObject *noargs)
{
    return PyLong_FromUnsignedLong(seccomp_arch_native());
}

static PyObject *
seccomp_library_version(PyObject *self, PyObject *noargs)
{
    const struct scmp_version *v = seccomp_version();
    return Py_BuildValue("(III)", v->major, v->minor, v->micro);
}

static PyObject *
seccomp_api_level(PyObject *self, PyObject *noargs)
{
    return PyLong_FromUnsignedLong(seccomp_api_get());
}

static PyMethodDef seccomp_methods[] = {
    { "compile", seccomp_compile, METH_VARARGS,
      "compile(default_action, arches, rules, optimize) -> (program, unknown_names)" },
    { "max_syscalls", seccomp_max_syscalls, METH_VARARGS,
      "max_syscalls(arches, names) -> largest syscall number per architecture (-1: none)" },
    { "resolve", seccomp_resolve, METH_VARARGS, "resolve(name, arch=native) -> number (< 0: none)" },
    { "arch_token", seccomp_arch_token, METH_VARARGS, "arch_token(name) -> token (0: unknown)" },
    { "native_arch", seccomp_native_arch, METH_NOARGS, "native_arch() -> token" },
    { "version", seccomp_library_version, METH_NOARGS, "libseccomp's (major, minor, micro)" },
    { "api_level", seccomp_api_level, METH_NOARGS, "libseccomp's API level on this kernel" },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef seccomp_module = {
    PyModuleDef_HEAD_INIT, "clonekit._seccomp", "seccomp filters compiled with libseccomp", -1,
    seccomp_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__seccomp(void)
{
    return PyModule_Create(&seccomp_module);
}
