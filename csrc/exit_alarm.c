/* The exit alarm (h2odl.h, h2o_exit_alarm): one line and an exit status for a process that
 * has not ended `seconds` after its work was done.  The handler calls write(2) and _exit(2)
 * only (both async-signal-safe), from a buffer filled before the alarm is armed. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "h2odl.h"

static char exit_line[H2O_EXIT_LINE_MAX]; /* the line, written whole by on_alarm */
static size_t exit_line_len;
static volatile sig_atomic_t exit_status;

static void on_alarm(int sig) {
    (void)sig;
    size_t done = 0;
    while (done < exit_line_len) {
        ssize_t w = write(STDERR_FILENO, exit_line + done, exit_line_len - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    _exit(exit_status);
}

int h2o_exit_alarm(int seconds, const char *line, int status) {
    if (seconds < 0 || line == NULL || status < 0 || status > 255) return H2O_EARG;
    size_t n = strlen(line);
    if (n >= H2O_EXIT_LINE_MAX) return H2O_EARG;
    alarm(0); /* (the buffer is not read while it is refilled) */
    if (seconds == 0) return H2O_OK;
    memcpy(exit_line, line, n);
    exit_line_len = n;
    exit_status = status;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGALRM, &action, NULL) != 0) return H2O_EARG;
    alarm((unsigned)seconds);
    return H2O_OK;
}
