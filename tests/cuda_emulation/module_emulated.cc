// rnnfast._cuda_emulated: the CUDA module's code (src/cuda/rnn_cuda.cu and
// module.cc, unchanged) built against the host emulation of the CUDA runtime
// and cuBLAS (src/cuda/host_emulation.h), so that tests/test_gpu.py checks the
// orchestration (GEMM shapes and leading dimensions, buffers, step order,
// reorderings) against the CPU kernels on machines without a GPU. Built with
// the C++ tests (RNNFAST_BUILD_TESTS); not part of a normal install.
#define RNNFAST_CUDA_EMULATE 1
#define RNNFAST_CUDA_MODULE_NAME _cuda_emulated
#include "cuda/rnn_cuda.cu"
#include "cuda/module.cc"
