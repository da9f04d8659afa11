// Convolution over one or two spatial axes (Keras 3 Conv1D / Conv2D),
// channels_last, forward and backward:
//   z[n, oh, ow, f] = bias[f] + sum_{kh, kw, c} x[n, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw, g*Cg + c]
//                                              * kernel[kh, kw, c, f]
//   y = act(z)
// where g = f / (F / groups) is the group of filter f, Cg = C / groups, and
// input cells outside the array (the padding) are zero. A 1-D convolution is
// the case in_h = kernel_h = 1 (causal padding: pad_left = (K-1)*dilation,
// nothing on the right).
//
// Shapes (row-major, Keras layouts):
//   x      [N, H, W, C]
//   kernel [KH, KW, C/groups, F]
//   bias   [F] (null: no bias)
//   y      [N, OH, OW, F]
// with OH = (H + pad_top + pad_bottom - dilation_h*(KH-1) - 1) / stride_h + 1
// (the bottom/right padding is implied by the output size; cells past the
// input read as zeros).
//
// Algorithm (README, design): im2col + GEMM by blocks of output positions,
// threads splitting the batch; a 1x1, stride-1, unpadded convolution is one
// GEMM on the input itself. The backward rebuilds the columns rather than
// keeping them from the forward (they are KH*KW times the input's size).
#pragma once

#include "rnnfast/common.h"

namespace rnnfast {

struct ConvDims {
  Index batch = 0;                        // N
  Index in_h = 1, in_w = 0;               // H, W
  Index channels = 0;                     // C
  Index out_h = 1, out_w = 0;             // OH, OW
  Index filters = 0;                      // F
  Index kernel_h = 1, kernel_w = 1;       // KH, KW
  Index stride_h = 1, stride_w = 1;
  Index dilation_h = 1, dilation_w = 1;
  Index pad_top = 0, pad_left = 0;        // zeros before the first input row / column
  Index groups = 1;                       // C and F are multiples of groups
};

// Throws std::invalid_argument when the dimensions are inconsistent.
void CheckConvDims(const ConvDims& d);

// y = act(conv(x, kernel) + bias). Uses the kernels' thread pool.
template <typename T>
void ConvForward(const ConvDims& d, Activation act, const T* x, const T* kernel, const T* bias,
                 T* y);

// Gradients of y = act(conv(x, kernel) + bias) given dy [N, OH, OW, F] and the
// forward's output y (read only when act is not linear; act' is computed from
// it). Writes (overwrites) dkernel [KH, KW, C/groups, F], dbias [F] (null:
// skipped) and dx [N, H, W, C] (null: skipped).
template <typename T>
void ConvBackward(const ConvDims& d, Activation act, const T* x, const T* kernel, const T* y,
                  const T* dy, T* dx, T* dkernel, T* dbias);

}  // namespace rnnfast
