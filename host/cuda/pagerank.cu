// PageRank power iteration on a CSR graph (by destination), f64, with no host round trip per
// iteration. Compiled to PTX by scripts/build-ptx.sh (pinned NVRTC 12.4, compute_80); the PTX in
// host/cuda/ptx/ is committed and embedded in the worker (rustkernel-cuda, include_str!).
//
// Iteration i (0-based) is two launches on one stream, reading `rank` and writing `next` (the
// host alternates the two buffers):
//   pagerank_contrib(i): contrib[u] = rank[u] * inv_out_degree[u]; dangling[i] += rank of dangling nodes
//   pagerank_spmv(i):    next[v] = (1-d)/n + d*dangling[i]/n + d*sum_{u->v} contrib[u]
//                        change[i] += |next[v] - rank[v]|   (the L1 change of iteration i)
// exactly the CPU's arithmetic (host/src/kernels/pagerank.rs), per node in the same order.
// `dangling` and `change` have one slot per iteration, zeroed once before the run, so nothing
// is reset between iterations.
//
// Convergence is decided on the device: both kernels of iteration i > 0 return at once when
// change[i-1] < tolerance. Iteration i-1 was then the CPU's last one (its rule: stop after the
// first iteration whose change is below the tolerance), and its ranks stay untouched in its
// output buffer; a skipped iteration leaves its change at 0, so every later one skips too
// (with tolerance 0 nothing is skipped, as the CPU never stops early). The host launches k
// iterations at a time and reads their k changes once, to learn where the run stopped.

#define BLOCK 256

// Adds `v` of every thread of the block into *target with one atomic per block. Every thread
// of the block must call it (it synchronises the block).
__device__ static void block_add(double *target, double v) {
    __shared__ double partial[BLOCK / 32];
    for (int offset = 16; offset > 0; offset /= 2) {
        v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    unsigned lane = threadIdx.x & 31u;
    unsigned warp = threadIdx.x >> 5;
    if (lane == 0) {
        partial[warp] = v;
    }
    __syncthreads();
    if (warp == 0) {
        v = lane < BLOCK / 32 ? partial[lane] : 0.0;
        for (int offset = 16; offset > 0; offset /= 2) {
            v += __shfl_down_sync(0xffffffffu, v, offset);
        }
        if (lane == 0) {
            atomicAdd(target, v);
        }
    }
}

// Whether an earlier iteration already met the tolerance (the same answer in every thread).
__device__ static bool converged(unsigned iteration, const double *change, double tolerance) {
    return iteration > 0 && change[iteration - 1] < tolerance;
}

extern "C" __global__ void __launch_bounds__(BLOCK)
pagerank_contrib(unsigned n, unsigned iteration, double tolerance, const double *__restrict__ rank,
                 const double *__restrict__ inv_out_degree, double *__restrict__ contrib,
                 double *__restrict__ dangling, const double *__restrict__ change) {
    if (converged(iteration, change, tolerance)) {
        return;
    }
    unsigned u = blockIdx.x * blockDim.x + threadIdx.x;
    double held = 0.0;
    if (u < n) {
        double inv = inv_out_degree[u];
        double r = rank[u];
        contrib[u] = r * inv;
        if (inv == 0.0) {
            held = r;
        }
    }
    block_add(&dangling[iteration], held);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
pagerank_spmv(unsigned n, unsigned iteration, double tolerance, double damping,
              const unsigned *__restrict__ offsets, const unsigned *__restrict__ sources,
              const double *__restrict__ contrib, const double *__restrict__ rank,
              double *__restrict__ next, const double *__restrict__ dangling,
              double *__restrict__ change) {
    if (converged(iteration, change, tolerance)) {
        return;
    }
    unsigned v = blockIdx.x * blockDim.x + threadIdx.x;
    double moved = 0.0;
    if (v < n) {
        double sum = 0.0;
        unsigned end = offsets[v + 1];
        for (unsigned e = offsets[v]; e < end; ++e) {
            sum += contrib[sources[e]];
        }
        double base = (1.0 - damping) / (double)n + damping * dangling[iteration] / (double)n;
        double value = base + damping * sum;
        next[v] = value;
        moved = fabs(value - rank[v]);
    }
    block_add(&change[iteration], moved);
}
