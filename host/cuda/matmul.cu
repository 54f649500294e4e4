// C = A * B for n x n row-major f64 matrices, shared-memory tiles of TILE x TILE.
// Compiled to PTX by scripts/build-ptx.sh (pinned NVRTC 12.4, compute_80); the PTX in
// host/cuda/ptx/ is committed and embedded in the worker (rustkernel-cuda, include_str!).
// Launch with a (ceil(n/TILE), ceil(n/TILE)) grid of (TILE, TILE) blocks; TILE must match
// `TILE` in host/cuda/src/device.rs.

#define TILE 16

extern "C" __global__ void __launch_bounds__(TILE * TILE)
matmul_tiled(unsigned n, const double *__restrict__ a, const double *__restrict__ b,
             double *__restrict__ c) {
    __shared__ double as[TILE][TILE];
    __shared__ double bs[TILE][TILE];
    unsigned row = blockIdx.y * TILE + threadIdx.y;
    unsigned col = blockIdx.x * TILE + threadIdx.x;
    double sum = 0.0;
    for (unsigned t = 0; t < n; t += TILE) {
        unsigned ak = t + threadIdx.x;
        unsigned bk = t + threadIdx.y;
        as[threadIdx.y][threadIdx.x] = (row < n && ak < n) ? a[(size_t)row * n + ak] : 0.0;
        bs[threadIdx.y][threadIdx.x] = (bk < n && col < n) ? b[(size_t)bk * n + col] : 0.0;
        __syncthreads();
#pragma unroll
        for (unsigned k = 0; k < TILE; ++k) {
            sum += as[threadIdx.y][k] * bs[k][threadIdx.x];
        }
        __syncthreads();
    }
    if (row < n && col < n) {
        c[(size_t)row * n + col] = sum;
    }
}
