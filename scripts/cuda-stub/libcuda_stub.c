/*
 * A stub CUDA driver (libcuda.so.1) for machines without a GPU.
 *
 * It lets the `cuda` feature of rustkernel-host link (cust 0.3.2 links -lcuda) and run: cuInit
 * answers CUDA_ERROR_NO_DEVICE (100), as the real driver does on a machine without a GPU, and
 * so does every other entry point the worker can reach; cuGetErrorString and cuGetErrorName
 * work, so the error reads as it would with the real driver. Built by scripts/cuda-stub.sh.
 *
 * The entry points are declared without their real parameters: every one of them only
 * returns an int, and under the System V calling convention a callee that ignores its
 * arguments may be called with any of them.
 */

typedef int CUresult;

#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_NO_DEVICE 100

CUresult cuInit(unsigned int flags) {
    (void)flags;
    return CUDA_ERROR_NO_DEVICE;
}

CUresult cuGetErrorString(CUresult error, const char **out) {
    if (out == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    switch (error) {
    case CUDA_SUCCESS: *out = "no error"; break;
    case CUDA_ERROR_INVALID_VALUE: *out = "invalid argument"; break;
    case CUDA_ERROR_NO_DEVICE: *out = "no CUDA-capable device is detected"; break;
    default: *out = "unknown error (stub libcuda)"; break;
    }
    return CUDA_SUCCESS;
}

CUresult cuGetErrorName(CUresult error, const char **out) {
    if (out == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    switch (error) {
    case CUDA_SUCCESS: *out = "CUDA_SUCCESS"; break;
    case CUDA_ERROR_INVALID_VALUE: *out = "CUDA_ERROR_INVALID_VALUE"; break;
    case CUDA_ERROR_NO_DEVICE: *out = "CUDA_ERROR_NO_DEVICE"; break;
    default: *out = "CUDA_ERROR_UNKNOWN"; break;
    }
    return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *version) {
    if (version == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *version = 0;
    return CUDA_SUCCESS;
}

/* Every other symbol the worker links: no device. */
#define NO_DEVICE(name) \
    CUresult name(void) { return CUDA_ERROR_NO_DEVICE; }

#include "symbols.h"
