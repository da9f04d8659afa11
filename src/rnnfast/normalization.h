// Layer and batch normalization (Keras 3 LayerNormalization,
// BatchNormalization) on a [R, C] matrix: layer normalization normalizes each
// row over its C values, batch normalization each column over its R values
// (the caller moves the normalized axes last / the channel axis last).
//
//   y = (x - mean) * rstd * gamma + beta,   rstd = 1 / sqrt(var + epsilon)
//
// var is the biased variance (divided by the count). gamma and beta are
// [C] (null: 1 and 0: scale=False, center=False).
#pragma once

#include "rnnfast/common.h"

namespace rnnfast {

// x, y [R, C]; mean, rstd [R] (null: not kept; the backward needs them).
template <typename T>
void LayerNormForward(Index R, Index C, T epsilon, const T* x, const T* gamma, const T* beta, T* y,
                      T* mean, T* rstd);
// From x [R, C], the forward's mean and rstd [R], gamma [C] (or null) and
// dy [R, C]: dx [R, C] (null: skipped), dgamma and dbeta [C] (overwritten;
// null: skipped).
template <typename T>
void LayerNormBackward(Index R, Index C, const T* x, const T* mean, const T* rstd, const T* gamma,
                       const T* dy, T* dx, T* dgamma, T* dbeta);

// Column statistics of x [R, C]: mean [C] and biased variance [C] (two passes).
template <typename T>
void ColumnMoments(Index R, Index C, const T* x, T* mean, T* var);
// y = (x - mean) * rsqrt(var + epsilon) * gamma + beta, per column, with given
// mean and var [C] (the batch's in training, the moving ones in inference).
template <typename T>
void BatchNormApply(Index R, Index C, T epsilon, const T* x, const T* mean, const T* var,
                    const T* gamma, const T* beta, T* y);
// Gradients of the training forward (statistics of this batch): from x, its
// mean and var [C], gamma [C] (or null) and dy [R, C]: dx [R, C] (null:
// skipped), dgamma, dbeta [C] (overwritten; null: skipped).
template <typename T>
void BatchNormBackward(Index R, Index C, T epsilon, const T* x, const T* mean, const T* var,
                       const T* gamma, const T* dy, T* dx, T* dgamma, T* dbeta);

}  // namespace rnnfast
