/* Starting external programs (initdb, pg_ctl, pg_dump, pg_restore, tenant apps) with an
 * argument vector, never a shell string; optionally as another user, with redirected
 * output, in a new session. */
#ifndef SDO_SPAWN_H
#define SDO_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct spawn_opts {
    const char *const *env; /* extra "KEY=value" entries added to the environment; NULL-ended */
    const char *user;       /* run as this user (needs root); NULL = as we are */
    const char *cwd;        /* working directory; NULL = unchanged */
    int stdin_fd;           /* -1 = /dev/null */
    int stdout_fd;          /* -1 = /dev/null */
    int stderr_fd;          /* -1 = same as stdout_fd */
    bool new_session;       /* setsid(): the child outlives us and gets no terminal signals */
} spawn_opts;

/* Default options: /dev/null for all three streams. */
#define SPAWN_OPTS_INIT                                                                            \
    {                                                                                              \
        NULL, NULL, NULL, -1, -1, -1, false                                                        \
    }

/* Starts argv[0] (a path, or a name looked up in PATH) with argv. Returns the pid or -1
 * with errno and a message in err. The caller waits for it (spawn_wait). */
pid_t spawn_start(const char *const *argv, const spawn_opts *opts, char *err, size_t errsz);

/* Waits up to timeout_ms (< 0 = forever) for pid; returns its exit status (0-255), 128 + signal
 * when killed, or -1 on timeout (the process is then killed with SIGKILL and reaped). */
int spawn_wait(pid_t pid, int timeout_ms);

/* Runs argv to completion; captures up to outsz-1 bytes of its combined output into out (may
 * be NULL). Returns the exit status as spawn_wait does, or -1 if it could not start. */
int spawn_run(const char *const *argv, const spawn_opts *opts, int timeout_ms, char *out,
              size_t outsz);

/* True if the user exists; fills uid/gid. */
bool spawn_user(const char *user, uid_t *uid, gid_t *gid);

#endif
