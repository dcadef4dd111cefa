/* capabilities, rlimits, I/O priority, scheduler, personality. */
#define _GNU_SOURCE
#include "clonekit.h"

PyMethodDef security_methods[] = {
    { NULL, NULL, 0, NULL },
};
