/* probe: make a task with any flag set the kernel accepts and observe what it really shares.
 *
 * The probe runs in a helper process forked for it, so a child sharing memory, the fd table,
 * the thread group or the TLS pointer never touches the Python process.  The child reports
 * what it sees of itself through a pipe, then changes things (writes memory, opens an fd, sets
 * umask and a signal disposition, takes a SysV semaphore with SEM_UNDO); the helper looks at
 * which of those changes it can see.  Raw facts go back to Python, which names the verdicts. */
#define _GNU_SOURCE
#include "clonekit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <asm/prctl.h>
#endif

#ifndef __WALL
#define __WALL 0x40000000
#endif

const char *const probe_ns_names[PROBE_NS_KINDS] = {
    "mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time",
};

static const char *const self_ns_paths[PROBE_NS_KINDS] = {
    "/proc/thread-self/ns/mnt", "/proc/thread-self/ns/uts", "/proc/thread-self/ns/ipc",
    "/proc/thread-self/ns/net", "/proc/thread-self/ns/pid", "/proc/thread-self/ns/user",
    "/proc/thread-self/ns/cgroup", "/proc/thread-self/ns/time",
};

#define PROBE_UMASK 077
#define PROBE_CHILD_DELAY_NS 30000000L /* lets "the parent was suspended" be told apart */

static int probe_signal(void) { return SIGRTMAX - 1; }

static void probe_noop(int sig) { (void)sig; }

struct probe_arg {
    int report_fd;
    int semid;
    int sig;
    volatile int *memory_marker;
    volatile int *child_tid_word;
    int set_hostname;
};

static NOINSTRUMENT unsigned long read_tls(void)
{
    unsigned long v = 0;
#if defined(__x86_64__)
    raw_syscall2(SYS_arch_prctl, ARCH_GET_FS, &v);
#elif defined(__aarch64__)
    __asm__ volatile("mrs %0, tpidr_el0" : "=r"(v));
#endif
    return v;
}

static NOINSTRUMENT int probe_child(void *p)
{
    struct probe_arg *a = p;
    struct probe_child_view v;
    for (unsigned i = 0; i < sizeof v; i++)
        ((volatile char *)&v)[i] = 0;

    v.child_tid_word = *a->child_tid_word;
    v.pid = (int)raw_syscall0(SYS_getpid);
    v.tid = (int)raw_syscall0(SYS_gettid);
    v.ppid = (int)raw_syscall0(SYS_getppid);
    v.tls = read_tls();
    struct raw_sigaction old;
    raw_syscall4(SYS_rt_sigaction, a->sig, 0, (long)&old, 8);
    v.sig_handler = (unsigned long)old.handler;
    for (int i = 0; i < PROBE_NS_KINDS; i++) {
        struct stat st;
        if (raw_syscall4(SYS_newfstatat, AT_FDCWD, self_ns_paths[i], (long)&st, 0) == 0)
            v.ns[i] = st.st_ino;
        else
            v.ns_errors++;
    }

    /* now change what the helper will look for */
    if (a->set_hostname)
        raw_syscall2(SYS_sethostname, PROBE_HOSTNAME, sizeof PROBE_HOSTNAME - 1);
    struct utsname u;
    if (raw_syscall1(SYS_uname, &u) == 0)
        for (int i = 0; i < 64 && u.nodename[i]; i++)
            v.hostname[i] = u.nodename[i];

    *a->memory_marker = 1;
    v.fd = (int)raw_syscall4(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC, 0);
    raw_syscall1(SYS_umask, PROBE_UMASK);
    struct raw_sigaction ign = { .handler = SIG_IGN };
    raw_syscall4(SYS_rt_sigaction, a->sig, (long)&ign, 0, 8);
    if (a->semid >= 0) {
        struct sembuf up = { .sem_num = 0, .sem_op = 1, .sem_flg = SEM_UNDO };
        raw_syscall3(SYS_semop, a->semid, (long)&up, 1);
    }
    struct timespec delay = { 0, PROBE_CHILD_DELAY_NS };
    raw_syscall2(SYS_nanosleep, &delay, 0);
    raw_syscall3(SYS_write, a->report_fd, &v, sizeof v);
    return 0;
}

static void read_own_ns(unsigned long long ns[PROBE_NS_KINDS])
{
    for (int i = 0; i < PROBE_NS_KINDS; i++) {
        struct stat st;
        ns[i] = stat(self_ns_paths[i], &st) == 0 ? st.st_ino : 0;
    }
}

static int wait_readable(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int r;
    do
        r = poll(&pfd, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

static void sleep_ms(long ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

/* the helper: sets the stage, makes the task, observes, writes the report, exits */
static void probe_helper(unsigned long long flags, int exit_signal, int cgroup_fd, int out_fd)
{
    struct probe_report rep;
    memset(&rep, 0, sizeof rep);
    rep.sem_value = -1;
    rep.tid_cleared = -1;
    rep.exit_signal_received = -1;
    rep.helper_pid = getpid();
    rep.helper_ppid = getppid();
    rep.helper_tls = read_tls();
    rep.helper_noop_handler = (unsigned long)probe_noop;
    read_own_ns(rep.helper_ns);

    int sig = probe_signal();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = probe_noop;
    sigaction(sig, &sa, NULL);
    umask(022);
    int semid = (flags & CLONE_NEWIPC) ? -1 : semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);

    sigset_t waitset;
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGCHLD);
    if (exit_signal > 0 && exit_signal < 65 && exit_signal != SIGKILL && exit_signal != SIGSTOP)
        sigaddset(&waitset, exit_signal);
    sigprocmask(SIG_BLOCK, &waitset, NULL);

    int rfd[2];
    if (pipe2(rfd, O_CLOEXEC) < 0)
        raw_exit_group(3);
    size_t stack_size = 256 * 1024;
    char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    /* a zeroed block whose first word points at itself: enough of a TCB for a child that
     * uses no TLS, and a thread pointer that differs from ours */
    unsigned long *tls = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0);
    if (stack == MAP_FAILED || tls == MAP_FAILED)
        raw_exit_group(3);
    tls[256] = (unsigned long)&tls[256];

    static volatile int memory_marker, child_tid_word;
    static int parent_tid_word, pidfd_word;
    memory_marker = 0;
    child_tid_word = PROBE_TID_SENTINEL; /* SETTID writes the tid, CLEARTID writes 0 */
    parent_tid_word = 0;
    pidfd_word = -1;
    struct probe_arg arg = {
        .report_fd = rfd[1], .semid = semid, .sig = sig, .memory_marker = &memory_marker,
        .child_tid_word = &child_tid_word,
        /* only in a UTS namespace of its own: never rename the host */
        .set_hostname = (flags & CLONE_NEWUTS) != 0,
    };
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = flags;
    ca.exit_signal = (unsigned long long)exit_signal;
    ca.stack = (unsigned long)stack;
    ca.stack_size = stack_size;
    ca.tls = (unsigned long)&tls[256];
    ca.pidfd = (unsigned long)&pidfd_word;
    ca.parent_tid = (unsigned long)&parent_tid_word;
    ca.child_tid = (unsigned long)&child_tid_word;
    ca.cgroup = cgroup_fd < 0 ? 0 : (unsigned long long)cgroup_fd;

    long pid = clone3_run(&ca, probe_child, &arg);
    if (pid < 0) {
        rep.clone_errno = (int)-pid;
        goto report;
    }
    rep.child_pid = (int)pid;
    rep.suspended = wait_readable(rfd[0], 0);
    if (wait_readable(rfd[0], 5000) &&
        read(rfd[0], &rep.child, sizeof rep.child) == (ssize_t)sizeof rep.child)
        rep.got_view = 1;

    /* wait for the task to end */
    if (flags & CLONE_THREAD) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%ld", pid);
        for (int i = 0; i < 2000; i++) {
            struct stat st;
            if (stat(path, &st) < 0 && (!(flags & CLONE_CHILD_CLEARTID) || child_tid_word == 0)) {
                rep.ended = 1;
                break;
            }
            if ((flags & CLONE_CHILD_CLEARTID) && child_tid_word != 0) {
                /* the kernel clears the word and wakes this futex when the thread ends */
                struct timespec t = { 0, 10000000L };
                raw_syscall4(SYS_futex, &child_tid_word, FUTEX_WAIT, child_tid_word, &t);
            } else {
                sleep_ms(1);
            }
        }
    } else if (flags & CLONE_PARENT) {
        int pfd = (int)raw_syscall2(SYS_pidfd_open, pid, 0);
        if (pfd >= 0) {
            rep.ended = wait_readable(pfd, 5000);
            close(pfd);
        }
    } else {
        siginfo_t si;
        int r;
        while ((r = waitid(P_PID, (id_t)pid, &si, WEXITED | __WALL)) < 0 && errno == EINTR)
            ;
        rep.ended = rep.reaped = r == 0;
    }

    /* which exit signal reached us: it is queued before the task can be reaped */
    if (flags & CLONE_PARENT) {
        rep.exit_signal_received = -1; /* it went to our parent */
    } else {
        struct timespec zero = { 0, 0 };
        siginfo_t si;
        int got = sigtimedwait(&waitset, &si, &zero);
        rep.exit_signal_received = (got > 0 && si.si_pid == pid) ? got : 0;
    }

    rep.memory_seen = memory_marker == 1;
    if (rep.got_view && rep.child.fd >= 0) {
        struct stat st;
        rep.fd_seen = fstat(rep.child.fd, &st) == 0 && S_ISCHR(st.st_mode) &&
                      st.st_rdev == makedev(1, 3);
        if (rep.fd_seen)
            close(rep.child.fd);
    }
    rep.umask_seen = umask(022) == PROBE_UMASK;
    struct sigaction now;
    sigaction(sig, NULL, &now);
    rep.sighand_seen = now.sa_handler == SIG_IGN;
    if (semid >= 0) {
        rep.sem_value = semctl(semid, 0, GETVAL);
        semctl(semid, 0, IPC_RMID);
    }
    rep.parent_tid_word = parent_tid_word;
    rep.child_tid_word_after = child_tid_word;
    /* the word is ours to see only when the memory is shared */
    if (flags & CLONE_VM)
        rep.tid_cleared = rep.ended && child_tid_word == 0;
    rep.pidfd_returned = (flags & CLONE_PIDFD) && pidfd_word >= 0;

    struct utsname u;
    if (uname(&u) == 0)
        memcpy(rep.helper_hostname, u.nodename, sizeof rep.helper_hostname - 1);

report:
    if (semid >= 0 && rep.sem_value < 0)
        semctl(semid, 0, IPC_RMID);
    raw_syscall3(SYS_write, out_fd, &rep, sizeof rep);
    raw_exit_group(0);
}

long probe_run(unsigned long long flags, int exit_signal, int cgroup_fd,
               struct probe_report *report)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    pid_t helper = fork();
    if (helper < 0) {
        int err = errno;
        close(fds[0]);
        close(fds[1]);
        return -err;
    }
    if (helper == 0) {
        close(fds[0]);
        probe_helper(flags, exit_signal, cgroup_fd, fds[1]);
    }
    close(fds[1]);
    ssize_t n, got = 0;
    while (got < (ssize_t)sizeof *report) {
        n = read(fds[0], (char *)report + got, sizeof *report - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += n;
    }
    close(fds[0]);
    while (waitpid(helper, NULL, __WALL) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof *report)
        return -EIO;
    /* a CLONE_PARENT task was the helper's sibling: it is ours to reap */
    if (report->clone_errno == 0 && (flags & CLONE_PARENT) && !(flags & CLONE_THREAD)) {
        siginfo_t si;
        while (waitid(P_PID, (id_t)report->child_pid, &si, WEXITED | __WALL) < 0 && errno == EINTR)
            ;
    }
    return 0;
}

#define SET_INT(d, k, v)                                      \
    do {                                                      \
        PyObject *o_ = PyLong_FromLongLong((long long)(v));   \
        if (!o_ || PyDict_SetItemString((d), (k), o_) < 0) {  \
            Py_XDECREF(o_);                                   \
            goto fail;                                        \
        }                                                     \
        Py_DECREF(o_);                                        \
    } while (0)

static int set_str(PyObject *d, const char *key, const char *value)
{
    PyObject *o = PyUnicode_DecodeFSDefault(value);
    int r = o ? PyDict_SetItemString(d, key, o) : -1;
    Py_XDECREF(o);
    return r;
}

static PyObject *ns_dict(const unsigned long long ns[PROBE_NS_KINDS])
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    for (int i = 0; i < PROBE_NS_KINDS; i++)
        SET_INT(d, probe_ns_names[i], ns[i]);
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

PyObject *probe_report_dict(const struct probe_report *r)
{
    PyObject *d = PyDict_New(), *child = NULL, *ns = NULL;
    if (!d)
        return NULL;
    SET_INT(d, "clone_errno", r->clone_errno);
    SET_INT(d, "helper_pid", r->helper_pid);
    SET_INT(d, "helper_ppid", r->helper_ppid);
    SET_INT(d, "helper_tls", r->helper_tls);
    SET_INT(d, "helper_noop_handler", r->helper_noop_handler);
    SET_INT(d, "child_pid", r->child_pid);
    SET_INT(d, "got_view", r->got_view);
    SET_INT(d, "memory_seen", r->memory_seen);
    SET_INT(d, "fd_seen", r->fd_seen);
    SET_INT(d, "umask_seen", r->umask_seen);
    SET_INT(d, "sighand_seen", r->sighand_seen);
    SET_INT(d, "sem_value", r->sem_value);
    SET_INT(d, "parent_tid_word", r->parent_tid_word);
    SET_INT(d, "child_tid_word_after", r->child_tid_word_after);
    SET_INT(d, "tid_cleared", r->tid_cleared);
    SET_INT(d, "suspended", r->suspended);
    SET_INT(d, "exit_signal_received", r->exit_signal_received);
    SET_INT(d, "pidfd_returned", r->pidfd_returned);
    SET_INT(d, "ended", r->ended);
    SET_INT(d, "reaped", r->reaped);
    if (set_str(d, "helper_hostname", r->helper_hostname) < 0)
        goto fail;
    if (!(ns = ns_dict(r->helper_ns)) || PyDict_SetItemString(d, "helper_ns", ns) < 0)
        goto fail;
    Py_CLEAR(ns);
    if (!(child = PyDict_New()))
        goto fail;
    SET_INT(child, "pid", r->child.pid);
    SET_INT(child, "tid", r->child.tid);
    SET_INT(child, "ppid", r->child.ppid);
    SET_INT(child, "child_tid_word", r->child.child_tid_word);
    SET_INT(child, "tls", r->child.tls);
    SET_INT(child, "sig_handler", r->child.sig_handler);
    SET_INT(child, "fd", r->child.fd);
    SET_INT(child, "ns_errors", r->child.ns_errors);
    if (set_str(child, "hostname", r->child.hostname) < 0)
        goto fail;
    if (!(ns = ns_dict(r->child.ns)) || PyDict_SetItemString(child, "ns", ns) < 0)
        goto fail;
    Py_CLEAR(ns);
    if (PyDict_SetItemString(d, "child", child) < 0)
        goto fail;
    Py_DECREF(child);
    return d;
fail:
    Py_XDECREF(ns);
    Py_XDECREF(child);
    Py_DECREF(d);
    return NULL;
}
