/* seccomp: install a compiled BPF filter (compiled by clonekit._seccomp), pidfd_getfd. */
#define _GNU_SOURCE
#include "clonekit.h"

PyMethodDef filter_methods[] = {
    { NULL, NULL, 0, NULL },
};
