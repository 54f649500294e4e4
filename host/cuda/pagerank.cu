// PageRank power iteration on a CSR graph (by destination), f64.
// Regenerate the PTX with scripts/build-ptx.sh; the worker loads pagerank.ptx at run time.
// One iteration is two launches:
//   pagerank_contrib: contrib[u] = rank[u] / outdeg(u); scalars[0] += rank of dangling nodes
//   pagerank_spmv:    next[v] = (1-d)/n + d*(sum_{u->v} contrib[u] + scalars[0]/n);
//                     scalars[1] += |next[v] - rank[v]|   (the L1 change)
// The host zeroes scalars before each iteration and reads scalars[1] after it.

__device__ static double warp_sum(double v) {
    for (int offset = 16; offset > 0; offset /= 2) {
        v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;
}

// One atomic per warp rather than per thread.
__device__ static void block_add(double *target, double v) {
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) {
        atomicAdd(target, v);
    }
}

extern "C" __global__ void pagerank_contrib(unsigned n, const double *rank, const double *inv_out_degree,
                                            double *contrib, double *scalars) {
    unsigned u = blockIdx.x * blockDim.x + threadIdx.x;
    double dangling = 0.0;
    if (u < n) {
        double inv = inv_out_degree[u];
        contrib[u] = rank[u] * inv;
        if (inv == 0.0) {
            dangling = rank[u];
        }
    }
    block_add(&scalars[0], dangling);
}

extern "C" __global__ void pagerank_spmv(unsigned n, const unsigned *offsets, const unsigned *sources,
                                         const double *contrib, const double *rank, double *next,
                                         double damping, double *scalars) {
    unsigned v = blockIdx.x * blockDim.x + threadIdx.x;
    double change = 0.0;
    if (v < n) {
        double sum = 0.0;
        for (unsigned e = offsets[v]; e < offsets[v + 1]; ++e) {
            sum += contrib[sources[e]];
        }
        double base = (1.0 - damping) / (double)n + damping * scalars[0] / (double)n;
        double value = base + damping * sum;
        next[v] = value;
        change = fabs(value - rank[v]);
    }
    block_add(&scalars[1], change);
}
