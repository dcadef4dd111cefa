/* The escape attempts of tests/runtime/test_escapes.py, one subcommand each.
 *
 * Built static by the test (gcc -static) and bind-mounted read-only into the container.  Each
 * step prints one line "STEP: OK" or "STEP: ENAME (text)", so the test asserts the errno the
 * kernel gave, not an exit code.  Nothing here does harm when it succeeds: a mount it makes is
 * undone at once, release_agent is opened for writing and closed without a byte written, a
 * device node is read (never written) and removed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <dirent.h>
#include <termios.h>
#include <unistd.h>

static const char *errname(int e)
{
    switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EIO: return "EIO";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case EROFS: return "EROFS";
    case EBUSY: return "EBUSY";
    case ENOTTY: return "ENOTTY";
    case ENODEV: return "ENODEV";
    case ESTALE: return "ESTALE";
    case EBADF: return "EBADF";
    case ENOTDIR: return "ENOTDIR";
    case EEXIST: return "EEXIST";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENXIO: return "ENXIO";
    case EAGAIN: return "EAGAIN";
    default: return "E?";
    }
}

static int report(const char *step, int rc)
{
    if (rc < 0)
        printf("%s: %s (%s)\n", step, errname(errno), strerror(errno));
    else
        printf("%s: OK\n", step);
    fflush(stdout);
    return rc;
}

static void list_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            printf("entry: %s\n", e->d_name);
    closedir(d);
    fflush(stdout);
}

/* mount a cgroup v1 hierarchy at DIR with OPTS; if that works, say whether release_agent could
 * be written (opened O_WRONLY, closed unwritten), list the tree's top, and unmount it */
static int cgroup_v1(const char *dir, const char *opts)
{
    char path[4096];
    mkdir(dir, 0755);
    if (report("mount", mount("cgroup", dir, "cgroup", 0, opts)) < 0)
        return 0;
    snprintf(path, sizeof path, "%s/release_agent", dir);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        printf("release_agent: could write\n");
        close(fd);
    } else {
        report("release_agent", -1);
    }
    list_dir(dir);
    umount2(dir, MNT_DETACH);
    return 0;
}

static int new_proc(const char *dir)
{
    mkdir(dir, 0755);
    if (report("mount", mount("proc", dir, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) < 0)
        return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/keys", dir);
    struct stat st;
    if (stat(path, &st) == 0)
        printf("keys size: %lld\n", (long long)st.st_size);
    umount2(dir, MNT_DETACH);
    return 0;
}

static int mknod_read(const char *path, unsigned major_, unsigned minor_)
{
    if (report("mknod", mknod(path, S_IFCHR | 0600, makedev(major_, minor_))) < 0)
        return 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (report("open", fd) >= 0) {
        char buf[1024];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = 0;
            char *nl = strchr(buf, '\n');
            if (nl)
                *nl = 0;
            printf("record: %s\n", buf);
        } else {
            report("read", (int)n < 0 ? -1 : 0);
        }
        close(fd);
    }
    unlink(path);
    return 0;
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* host side: the file handle of PATH as "TYPE HEX" */
static int handle_of(const char *path)
{
    struct file_handle *fh = malloc(sizeof *fh + MAX_HANDLE_SZ);
    int mount_id;
    fh->handle_bytes = MAX_HANDLE_SZ;
    if (name_to_handle_at(AT_FDCWD, path, fh, &mount_id, 0) < 0) {
        report("name_to_handle_at", -1);
        return 1;
    }
    printf("%d ", fh->handle_type);
    for (unsigned i = 0; i < fh->handle_bytes; i++)
        printf("%02x", fh->f_handle[i]);
    printf("\n");
    return 0;
}

/* container side, "shocker": open a host file by its handle through an fd on its filesystem */
static int shocker(const char *mount_path, int type, const char *hex)
{
    size_t len = strlen(hex) / 2;
    struct file_handle *fh = malloc(sizeof *fh + len);
    fh->handle_bytes = len;
    fh->handle_type = type;
    for (size_t i = 0; i < len; i++)
        fh->f_handle[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    int mfd = open(mount_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (report("open mount fd", mfd) < 0)
        return 0;
    int fd = open_by_handle_at(mfd, fh, O_RDONLY | O_CLOEXEC);
    if (report("open_by_handle_at", fd) < 0)
        return 0;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = 0;
        char *nl = strchr(buf, '\n');
        if (nl)
            *nl = 0;
        printf("read: %s\n", buf);
    }
    return 0;
}

/* whose terminal is fd 0: the session, the controlling tty, and TIOCSTI into it */
static int tiocsti(void)
{
    char stat_[1024] = "";
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, stat_, sizeof stat_ - 1);
        stat_[n > 0 ? n : 0] = 0;
        close(fd);
    }
    /* after "(comm)": state ppid pgrp session tty_nr */
    char *p = strrchr(stat_, ')');
    int ppid = 0, pgrp = 0, session = 0, tty_nr = -1;
    char state = '?';
    if (p)
        sscanf(p + 1, " %c %d %d %d %d", &state, &ppid, &pgrp, &session, &tty_nr);
    printf("pid: %d\nsid: %d\ntty_nr: %d\n", (int)getpid(), (int)getsid(0), tty_nr);
    fflush(stdout);
    /* the controlling terminal, if any: ENXIO when there is none */
    int tty = open("/dev/tty", O_RDONLY | O_NOCTTY | O_CLOEXEC);
    report("open /dev/tty", tty);
    if (tty >= 0)
        close(tty);
    /* every terminal among the fds the runtime handed over: 0-2, and 3 (--preserve-fds 1) */
    char c = 'x', step[32];
    int ttys = 0;
    for (int i = 0; i <= 3; i++) {
        if (!isatty(i))
            continue;
        ttys++;
        snprintf(step, sizeof step, "tiocsti fd%d", i);
        report(step, ioctl(i, TIOCSTI, &c));
    }
    printf("terminals: %d\ndone: tiocsti\n", ttys);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && !strcmp(argv[1], "cgroup-v1"))
        return cgroup_v1(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "proc"))
        return new_proc(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "umount")) {
        report("umount", umount2(argv[2], 0));
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "remount-rw")) {
        report("remount", mount(NULL, argv[2], NULL, MS_REMOUNT | MS_BIND, NULL));
        return 0;
    }
    if (argc >= 5 && !strcmp(argv[1], "mknod-read"))
        return mknod_read(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
    if (argc >= 3 && !strcmp(argv[1], "handle"))
        return handle_of(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "shocker"))
        return shocker(argv[2], atoi(argv[3]), argv[4]);
    if (argc >= 2 && !strcmp(argv[1], "tiocsti"))
        return tiocsti();
    fprintf(stderr, "usage: escape_helper cgroup-v1 DIR OPTS | proc DIR | umount PATH | "
                    "remount-rw PATH | mknod-read PATH MAJOR MINOR | handle PATH | "
                    "shocker DIR TYPE HEX | tiocsti\n");
    return 2;
}
