// comm_device_none.c — comm_device.h for a build without CUDA: no device
// buffers exist, so nothing can call it (train.c refuses device: cuda first).
#include "stsae/comm/comm_device.h"

#include "stsae/base/common.h"

CommDevice *comm_device_create(Comm *c, CommDeviceBackend backend, char *msg, size_t cap) {
    (void)c, (void)backend, (void)msg, (void)cap;
    die("comm_device_create in a build without CUDA (a bug: device: cuda is refused before)");
}
void comm_device_free(CommDevice *d) { (void)d; }
const char *comm_device_describe(const CommDevice *d) { (void)d; return "none"; }
const char *comm_device_backends(void) { return "none (built without CUDA)"; }
void comm_device_allreduce(CommDevice *d, void *buf, size_t count, CommType t, CommOp op) {
    (void)d, (void)buf, (void)count, (void)t, (void)op;
    die("comm_device_allreduce in a build without CUDA (a bug)");
}
void comm_device_allgatherv(CommDevice *d, const void *send, void *recv, const int *counts, const int *displs,
                            CommType t) {
    (void)d, (void)send, (void)recv, (void)counts, (void)displs, (void)t;
    die("comm_device_allgatherv in a build without CUDA (a bug)");
}
void comm_device_reduce_scatterv(CommDevice *d, const void *send, void *recv, const int *counts, CommType t,
                                 CommOp op) {
    (void)d, (void)send, (void)recv, (void)counts, (void)t, (void)op;
    die("comm_device_reduce_scatterv in a build without CUDA (a bug)");
}
void comm_device_hooks(CommDevice *d, SaeReduce *red) { (void)d, (void)red; }
