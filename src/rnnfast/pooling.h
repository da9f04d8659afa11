// Max and average pooling over one or two spatial axes (Keras 3
// MaxPooling1D/2D, AveragePooling1D/2D), channels_last, forward and backward.
//
// Shapes (row-major):
//   x  [N, H, W, C]     y  [N, OH, OW, C]
// Window (oh, ow) covers input rows oh*stride_h - pad_top + [0, pool_h) and
// columns ow*stride_w - pad_left + [0, pool_w); cells outside the input are
// padding: max ignores them (as -inf would), average divides by the number of
// cells inside the input only (Keras's 'same' padding). A 1-D pooling is the
// case in_h = pool_h = 1.
#pragma once

#include <cstdint>

#include "rnnfast/common.h"

namespace rnnfast {

struct PoolDims {
  Index batch = 0;                   // N
  Index in_h = 1, in_w = 0;          // H, W
  Index channels = 0;                // C
  Index out_h = 1, out_w = 0;        // OH, OW
  Index pool_h = 1, pool_w = 1;
  Index stride_h = 1, stride_w = 1;
  Index pad_top = 0, pad_left = 0;
};

// Throws std::invalid_argument on inconsistent dimensions, including a window
// that holds no input cell (which Keras never produces).
void CheckPoolDims(const PoolDims& d);

// y = max over each window. argmax [N, OH, OW, C] (null: not kept) receives,
// per output, the flat index ih*W + iw of the first maximal input cell.
template <typename T>
void MaxPoolForward(const PoolDims& d, const T* x, T* y, std::int32_t* argmax);
// dx [N, H, W, C] (overwritten) = dy [N, OH, OW, C] routed to the argmax cells.
template <typename T>
void MaxPoolBackward(const PoolDims& d, const T* dy, const std::int32_t* argmax, T* dx);

// y = mean over each window's cells inside the input.
template <typename T>
void AvgPoolForward(const PoolDims& d, const T* x, T* y);
// dx [N, H, W, C] (overwritten): each output's dy shared equally by its cells.
template <typename T>
void AvgPoolBackward(const PoolDims& d, const T* dy, T* dx);

}  // namespace rnnfast
