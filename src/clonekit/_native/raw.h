/* Raw syscalls and the clone3 trampoline.  Children that share memory or run on a borrowed
 * stack must not touch libc state (errno lives in TLS, which a SETTLS child does not have),
 * so they use these instead of libc's wrappers.  Return values are the kernel's: -errno. */
#ifndef CLONEKIT_RAW_H
#define CLONEKIT_RAW_H

#include <linux/sched.h>
#include <stddef.h>
#include <sys/syscall.h>

#define NOINSTRUMENT __attribute__((noinline, no_stack_protector))

#if defined(__x86_64__)

static inline long raw_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* clone3 whose child calls fn(arg) on args->stack and then exits the task with its result.
 * One asm block: after the syscall the child must not touch the parent's stack frame. */
static inline long clone3_run(struct clone_args *args, int (*fn)(void *), void *arg)
{
    long ret;
    register void *r12 __asm__("r12") = (void *)fn;
    register void *r13 __asm__("r13") = arg;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t"
                     "mov %%r13, %%rdi\n\t"
                     "call *%%r12\n\t"
                     "mov %%eax, %%edi\n\t"
                     "mov $60, %%eax\n\t" /* SYS_exit: this task only */
                     "syscall\n\t"
                     "hlt\n\t"
                     "1:\n\t"
                     : "=a"(ret)
                     : "a"((long)SYS_clone3), "D"(args), "S"(sizeof *args), "r"(r12), "r"(r13)
                     : "rcx", "r11", "memory");
    return ret;
}

/* A syscall that may create a task which must do nothing but write `len` bytes from `buf`
 * to `fd` and exit: no stack, no memory of its own is touched, so it is safe even when it
 * shares the caller's memory and stack (CLONE_VM without a stack of its own).  Returns the
 * syscall's result in the caller. */
static inline long raw_fork_and_report(long n, long a, long b, long c, long d, long e,
                                       int fd, const void *buf, long len)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r12 __asm__("r12") = fd;
    register const void *r13 __asm__("r13") = buf;
    register long r14 __asm__("r14") = len;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "mov $1, %%eax\n\t" /* write(fd, buf, len) */
                     "mov %%r12, %%rdi\n\t"
                     "mov %%r13, %%rsi\n\t"
                     "mov %%r14, %%rdx\n\t"
                     "syscall\n\t"
                     "mov $60, %%eax\n\t"
                     "xor %%edi, %%edi\n\t"
                     "syscall\n\t"
                     "hlt\n\t"
                     "1:\n\t"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r12), "r"(r13),
                       "r"(r14)
                     : "rcx", "r11", "memory");
    return ret;
}

#elif defined(__aarch64__)

static inline long raw_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}

static inline long clone3_run(struct clone_args *args, int (*fn)(void *), void *arg)
{
    register long x8 __asm__("x8") = SYS_clone3;
    register long x0 __asm__("x0") = (long)args;
    register long x1 __asm__("x1") = sizeof *args;
    register long x19 __asm__("x19") = (long)fn;
    register long x20 __asm__("x20") = (long)arg;
    __asm__ volatile("svc 0\n\t"
                     "cbnz x0, 1f\n\t"
                     "mov x29, xzr\n\t"
                     "mov x0, x20\n\t"
                     "blr x19\n\t"
                     "mov x8, #93\n\t" /* SYS_exit */
                     "svc 0\n\t"
                     "1:\n\t"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x19), "r"(x20)
                     : "x30", "memory");
    return x0;
}

static inline long raw_fork_and_report(long n, long a, long b, long c, long d, long e,
                                       int fd, const void *buf, long len)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x19 __asm__("x19") = fd;
    register long x20 __asm__("x20") = (long)buf;
    register long x21 __asm__("x21") = len;
    __asm__ volatile("svc 0\n\t"
                     "cbnz x0, 1f\n\t"
                     "mov x8, #64\n\t" /* write */
                     "mov x0, x19\n\t"
                     "mov x1, x20\n\t"
                     "mov x2, x21\n\t"
                     "svc 0\n\t"
                     "mov x8, #93\n\t"
                     "mov x0, xzr\n\t"
                     "svc 0\n\t"
                     "1:\n\t"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x19), "r"(x20), "r"(x21)
                     : "memory");
    return x0;
}

#else
#error "clonekit's native core supports x86_64 and aarch64"
#endif

#define raw_syscall0(n) raw_syscall6((n), 0, 0, 0, 0, 0, 0)
#define raw_syscall1(n, a) raw_syscall6((n), (long)(a), 0, 0, 0, 0, 0)
#define raw_syscall2(n, a, b) raw_syscall6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define raw_syscall3(n, a, b, c) raw_syscall6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define raw_syscall4(n, a, b, c, d) \
    raw_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

static inline __attribute__((noreturn)) void raw_exit(int code)
{
    for (;;)
        raw_syscall1(SYS_exit, code);
}

static inline __attribute__((noreturn)) void raw_exit_group(int code)
{
    for (;;)
        raw_syscall1(SYS_exit_group, code);
}

/* the kernel's struct sigaction (not glibc's) */
struct raw_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

#endif
