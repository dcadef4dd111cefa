/* BPF_CGROUP_DEVICE programs: device rules on cgroup v2. */
#define _GNU_SOURCE
#include "clonekit.h"

PyMethodDef bpf_methods[] = {
    { NULL, NULL, 0, NULL },
};
