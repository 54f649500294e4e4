// C = A * B for n x n row-major f64 matrices, shared-memory tiles of TILE x TILE.
// Regenerate the PTX with scripts/build-ptx.sh; the worker loads matmul.ptx at run time.
// Launch with a (ceil(n/TILE), ceil(n/TILE)) grid of (TILE, TILE) blocks.

#define TILE 16

extern "C" __global__ void matmul_tiled(unsigned n, const double *a, const double *b, double *c) {
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
        for (unsigned k = 0; k < TILE; ++k) {
            sum += as[threadIdx.y][k] * bs[k][threadIdx.x];
        }
        __syncthreads();
    }
    if (row < n && col < n) {
        c[(size_t)row * n + col] = sum;
    }
}
