/* kernel_verdict: make the real clone3/clone/unshare call and report only the kernel's answer.
 * The task it may create does nothing but report success and exit (raw_fork_and_report), so any
 * flag set is safe to try, CLONE_VM, CLONE_SETTLS and CLONE_THREAD included. */
#define _GNU_SOURCE
#include "clonekit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __WALL
#define __WALL 0x40000000
#endif

static const int accepted = 0;

/* The call itself.  On success the new task writes `accepted` to report_fd and exits; on
 * failure the caller gets -errno.  For unshare nothing is created and the result is returned. */
static long make_call(const struct verdict_call *c, int report_fd, long *pid_out)
{
    static int pidfd_word, parent_tid_word, child_tid_word;
    long r;
    *pid_out = 0;
    if (c->mode == VIA_UNSHARE)
        return raw_syscall1(SYS_unshare, c->flags);
    if (c->mode == VIA_CLONE) {
        /* legacy clone: (flags | exit signal, newsp, parent_tid, child_tid, tls) on x86_64;
         * CLONE_PIDFD writes the pidfd through the parent_tid pointer */
        unsigned long word = (unsigned long)(c->flags | (unsigned long long)c->exit_signal);
#if defined(__x86_64__)
        r = raw_fork_and_report(SYS_clone, (long)word, 0, (long)&parent_tid_word,
                                (long)&child_tid_word, 0, report_fd, &accepted, sizeof accepted);
#else
        r = raw_fork_and_report(SYS_clone, (long)word, 0, (long)&parent_tid_word, 0,
                                (long)&child_tid_word, report_fd, &accepted, sizeof accepted);
#endif
    } else {
        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = c->flags;
        ca.exit_signal = (unsigned long long)c->exit_signal;
        ca.pidfd = (unsigned long)&pidfd_word;
        ca.parent_tid = (unsigned long)&parent_tid_word;
        ca.child_tid = (unsigned long)&child_tid_word;
        ca.cgroup = c->cgroup_fd < 0 ? 0 : (unsigned long long)c->cgroup_fd;
        r = raw_fork_and_report(SYS_clone3, (long)&ca, sizeof ca, 0, 0, 0, report_fd, &accepted,
                                sizeof accepted);
    }
    if (r > 0)
        *pid_out = r;
    return r < 0 ? r : 0;
}

long verdict_here(const struct verdict_call *c)
{
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    long pid;
    long r = make_call(c, -1, &pid);
    int child = pid > 0 && !(c->flags & (CLONE_THREAD | CLONE_PARENT));
    if (child)
        while (wait4((pid_t)pid, NULL, __WALL, NULL) < 0 && errno == EINTR)
            ;
    /* swallow the exit signal so unblocking cannot kill the caller */
    int sig = (int)c->exit_signal;
    if (child && sig > 0 && sig < 65 && sig != SIGKILL && sig != SIGSTOP) {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        struct timespec zero = { 0, 0 };
        sigtimedwait(&one, NULL, &zero);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return r < 0 ? -r : 0;
}

/* fork-like raw clone3: no glibc fork handlers run, so the child may only use raw syscalls
 * and async-signal-safe libc wrappers */
static long raw_fork(unsigned long long flags)
{
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = flags;
    ca.exit_signal = SIGCHLD;
    return raw_syscall2(SYS_clone3, &ca, sizeof ca);
}

long verdict_isolated(const struct verdict_call *c)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    /* The init of a throwaway PID namespace ignores every signal it has no handler for, so
     * no exit signal (SIGKILL included) can take it down, and when it exits the kernel kills
     * and reaps whatever the call left behind. */
    long init = raw_fork(CLONE_NEWPID);
    if (init == -EPERM || init == -EINVAL || init == -ENOSPC || init == -EUSERS)
        init = raw_fork(0);
    if (init < 0) {
        close(fds[0]);
        close(fds[1]);
        return init;
    }
    if (init == 0) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        long b = raw_fork(0);
        if (b == 0) {
            long pid;
            long r = make_call(c, fds[1], &pid);
            if (r < 0) {
                int err = (int)-r;
                raw_syscall3(SYS_write, fds[1], &err, sizeof err);
            } else if (c->mode == VIA_UNSHARE || (c->flags & CLONE_THREAD)) {
                /* a new thread dies with our exit_group below, maybe before it reports;
                 * it has no exit signal that could kill us first, so we report for it */
                raw_syscall3(SYS_write, fds[1], &accepted, sizeof accepted);
            }
            raw_exit_group(0);
        }
        while (raw_syscall4(SYS_wait4, -1, 0, __WALL, 0) != -ECHILD)
            ;
        raw_exit_group(0);
    }
    close(fds[1]);
    int verdict = -1;
    ssize_t n;
    do
        n = read(fds[0], &verdict, sizeof verdict);
    while (n < 0 && errno == EINTR);
    close(fds[0]);
    while (wait4((pid_t)init, NULL, __WALL, NULL) < 0 && errno == EINTR)
        ;
    return n == sizeof verdict ? verdict : -EIO;
}
