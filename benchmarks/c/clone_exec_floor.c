/* The kernel's floor for benchmarks/spawn_namespaces.py: clone3 with the given namespace flags
 * straight to execve("/bin/true"), wait, repeat; prints the median microseconds per container-
 * like task.  No Python anywhere: what clonekit.spawn must come close to. */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    unsigned long long flags = strtoull(argv[1], NULL, 0);
    int loops = atoi(argv[2]), rounds = atoi(argv[3]);
    char *args[] = { "/bin/true", NULL }, *env[] = { NULL };
    double *med = calloc(rounds, sizeof *med);
    for (int r = 0; r < rounds; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < loops; i++) {
            struct clone_args ca;
            memset(&ca, 0, sizeof ca);
            ca.flags = flags;
            ca.exit_signal = SIGCHLD;
            long pid = syscall(SYS_clone3, &ca, sizeof ca);
            if (pid == 0) {
                execve(args[0], args, env);
                _exit(127);
            }
            if (pid < 0) {
                perror("clone3");
                return 1;
            }
            waitpid((pid_t)pid, NULL, 0);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        med[r] = ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3) / loops;
    }
    qsort(med, rounds, sizeof *med, cmp);
    printf("%.1f\n", med[rounds / 2]);
    return 0;
}
