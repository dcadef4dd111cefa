/* Internal interface between the C files of clonekit._native. */
#ifndef CLONEKIT_H
#define CLONEKIT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "raw.h"

enum verdict_via { VIA_CLONE3, VIA_CLONE, VIA_UNSHARE };

struct verdict_call {
    int mode;                 /* enum verdict_via */
    unsigned long long flags; /* for VIA_CLONE the exit signal is ORed in by the callee */
    long long exit_signal;
    int cgroup_fd;            /* for CLONE_INTO_CGROUP; < 0 means "none given" (field 0) */
};

/* 0 if the kernel accepted the call, else its errno (> 0); < 0 (-errno) if the machinery
 * itself failed.  _here makes the call in the calling process (which must be a throwaway);
 * _isolated makes it in a fresh grandchild inside a throwaway PID namespace. */
long verdict_here(const struct verdict_call *call);
long verdict_isolated(const struct verdict_call *call);

#define PROBE_NS_KINDS 8
#define PROBE_TID_SENTINEL (-1)
#define PROBE_HOSTNAME "clonekit-probe"
extern const char *const probe_ns_names[PROBE_NS_KINDS];

/* what the child saw of itself, sent to the helper through a pipe */
struct probe_child_view {
    int pid, tid, ppid;
    int child_tid_word;            /* its CLONE_CHILD_SETTID word, read first thing */
    unsigned long tls;             /* thread pointer */
    unsigned long sig_handler;     /* disposition of PROBE_SIGNAL it inherited */
    unsigned long long ns[PROBE_NS_KINDS];
    int fd;                        /* the fd it opened on /dev/null */
    int ns_errors;
    char hostname[65];             /* after it set its own (only with CLONE_NEWUTS) */
};

struct probe_report {
    int clone_errno;               /* 0: the task was made */
    int helper_pid, helper_ppid, child_pid;
    unsigned long helper_tls, helper_noop_handler;
    unsigned long long helper_ns[PROBE_NS_KINDS];
    int got_view;
    struct probe_child_view child;
    int memory_seen, fd_seen, umask_seen, sighand_seen;
    int sem_value;                 /* -1: not measured */
    int parent_tid_word, child_tid_word_after;
    int tid_cleared;               /* -1: not observable */
    int suspended;
    int exit_signal_received;      /* signal number, 0 = none, -1 = not observable */
    int pidfd_returned;
    int ended;                     /* the child was seen to end */
    int reaped;                    /* the helper could reap it: it was the helper's child */
    char helper_hostname[65];      /* after the child ended */
};

long probe_run(unsigned long long flags, int exit_signal, int cgroup_fd,
               struct probe_report *report);
PyObject *probe_report_dict(const struct probe_report *report);


/* sys.c: thin syscall wrappers (METH_VARARGS) */
PyObject *sys_mount(PyObject *self, PyObject *args);
PyObject *sys_umount2(PyObject *self, PyObject *args);
PyObject *sys_pivot_root(PyObject *self, PyObject *args);
PyObject *sys_setns(PyObject *self, PyObject *args);
PyObject *sys_unshare(PyObject *self, PyObject *args);
PyObject *sys_prctl(PyObject *self, PyObject *args);
PyObject *sys_sethostname(PyObject *self, PyObject *args);
PyObject *sys_setdomainname(PyObject *self, PyObject *args);
PyObject *sys_openat2(PyObject *self, PyObject *args);
PyObject *sys_join_session_keyring(PyObject *self, PyObject *args);
PyObject *sys_close_range(PyObject *self, PyObject *args);
PyObject *sys_reset_signals(PyObject *self, PyObject *noargs);
PyObject *sys_mount_setattr(PyObject *self, PyObject *args);
PyObject *sys_open_tree(PyObject *self, PyObject *args);
PyObject *sys_move_mount(PyObject *self, PyObject *args);

/* Each further C file exports its own method table; PyInit__native adds them all. */
extern PyMethodDef security_methods[];  /* security.c: capset, prlimit, ioprio, sched, personality */
char **bytes_vector(PyObject *seq, const char *what);  /* native.c: bytes items -> char *[] */

extern PyMethodDef bpf_methods[];       /* bpf.c: BPF_CGROUP_DEVICE programs (cgroup v2 device rules) */
extern PyMethodDef filter_methods[];    /* filter.c: install a seccomp BPF program, pidfd_getfd */
extern PyMethodDef sandbox_methods[];   /* sandbox.c: clone3 + a list of raw syscalls + execve */

#endif
