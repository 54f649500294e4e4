// Real GPU faults for the worker's fault injection (`--fault gpu-oob`, `--fault gpu-hang`), in
// the same pipeline as the kernels: compiled to PTX by scripts/build-ptx.sh, committed in
// host/cuda/ptx/, embedded in the worker. Never launched outside fault-injection tests.

// Writes one double at data[index]. The host passes an index far outside the buffer (one that
// wraps the address into the never-mapped first page), so the store faults with
// CUDA_ERROR_ILLEGAL_ADDRESS (700): a sticky error, the context is lost until the process exits.
extern "C" __global__ void fault_out_of_bounds(double *data, unsigned long long index) {
    volatile double *target = data + index;
    *target = 1.0;
}

// Spins until *flag is non-zero; the host passes a zeroed flag that nothing ever sets, so the
// kernel never returns and only killing the process (the service does, at the deadline plus
// its grace) frees the GPU. The volatile load keeps the loop from being optimised away.
extern "C" __global__ void fault_spin(const volatile unsigned *flag) {
    while (*flag == 0u) {
        __nanosleep(1000);
    }
}
