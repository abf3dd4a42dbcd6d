/* Starting external programs with fork/execvp and an argument vector. */
#include "util/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

bool spawn_user(const char *user, uid_t *uid, gid_t *gid)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(user, &pw, buf, sizeof buf, &res) != 0 || !res)
        return false;
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return true;
}

pid_t spawn_start(const char *const *argv, const spawn_opts *opts, char *err, size_t errsz)
{
    spawn_opts def = SPAWN_OPTS_INIT;
    if (!opts)
        opts = &def;
    uid_t uid = 0;
    gid_t gid = 0;
    if (opts->user && !spawn_user(opts->user, &uid, &gid)) {
        snprintf(err, errsz, "user '%s' does not exist", opts->user);
        errno = ENOENT;
        return -1;
    }
    /* A pipe closed on exec tells the parent whether exec worked. */
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0) {
        snprintf(err, errsz, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errsz, "fork: %s", strerror(errno));
        close(sync[0]);
        close(sync[1]);
        return -1;
    }
    if (pid == 0) {
        close(sync[0]);
        int devnull = open("/dev/null", O_RDWR);
        int in = opts->stdin_fd >= 0 ? opts->stdin_fd : devnull;
        int out = opts->stdout_fd >= 0 ? opts->stdout_fd : devnull;
        int errfd = opts->stderr_fd >= 0 ? opts->stderr_fd : out;
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
            _exit(127);
        /* nothing else leaks into the child */
        for (int fd = 3; fd < 1024; fd++)
            if (fd != sync[1])
                close(fd);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (opts->new_session)
            setsid();
        if (opts->user) {
            if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                goto fail;
        }
        if (opts->cwd && chdir(opts->cwd) < 0)
            goto fail;
        for (const char *const *e = opts->env; e && *e; e++)
            putenv((char *)*e);
        execvp(argv[0], (char *const *)argv);
    fail:;
        int e = errno;
        ssize_t w = write(sync[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(sync[1]);
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(sync[0], &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    close(sync[0]);
    if (n == (ssize_t)sizeof child_errno) {
        waitpid(pid, NULL, 0);
        snprintf(err, errsz, "cannot run %s: %s", argv[0], strerror(child_errno));
        errno = child_errno;
        return -1;
    }
    return pid;
}

static int decode(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}

int spawn_wait(pid_t pid, int timeout_ms)
{
    int status;
    if (timeout_ms < 0) {
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR)
                return 255;
        return decode(status);
    }
    int64_t until = sdo_mono_us() + (int64_t)timeout_ms * 1000;
    int sleep_us = 1000;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return decode(status);
        if (r < 0 && errno != EINTR)
            return 255;
        if (sdo_mono_us() >= until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep((useconds_t)sleep_us);
        if (sleep_us < 50000)
            sleep_us *= 2;
    }
}

int spawn_run(const char *const *argv, const spawn_opts *opts, int timeout_ms, char *out,
              size_t outsz)
{
    spawn_opts o = SPAWN_OPTS_INIT;
    if (opts)
        o = *opts;
    int p[2] = {-1, -1};
    if (out && outsz) {
        out[0] = 0;
        if (pipe2(p, O_CLOEXEC) < 0)
            return -1;
        o.stdout_fd = p[1];
        o.stderr_fd = p[1];
    }
    char err[256];
    pid_t pid = spawn_start(argv, &o, err, sizeof err);
    if (p[1] >= 0)
        close(p[1]);
    if (pid < 0) {
        if (out && outsz)
            snprintf(out, outsz, "%s", err);
        if (p[0] >= 0)
            close(p[0]);
        return -1;
    }
    if (p[0] >= 0) {
        /* read until EOF or the deadline; keep the first outsz-1 bytes */
        size_t have = 0;
        int64_t until = timeout_ms < 0 ? INT64_MAX : sdo_mono_us() + (int64_t)timeout_ms * 1000;
        for (;;) {
            int64_t left = until == INT64_MAX ? -1 : (until - sdo_mono_us()) / 1000;
            if (until != INT64_MAX && left <= 0)
                break;
            struct pollfd pfd = {p[0], POLLIN, 0};
            int pr = poll(&pfd, 1, left < 0 ? -1 : (int)left);
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr <= 0)
                break;
            char buf[4096];
            ssize_t n = read(p[0], buf, sizeof buf);
            if (n <= 0)
                break;
            if (have + 1 < outsz) {
                size_t take = (size_t)n < outsz - 1 - have ? (size_t)n : outsz - 1 - have;
                memcpy(out + have, buf, take);
                have += take;
                out[have] = 0;
            }
        }
        close(p[0]);
        if (until != INT64_MAX) {
            int64_t left = (until - sdo_mono_us()) / 1000;
            return spawn_wait(pid, left > 0 ? (int)left : 0);
        }
    }
    return spawn_wait(pid, timeout_ms);
}
