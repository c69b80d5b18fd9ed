/* lattice: sparse 3D deep learning and transformers on the CPU. */
#ifndef LATTICE_H
#define LATTICE_H

#include "lattice/ctx.h"
#include "lattice/dtype.h"
#include "lattice/tensor.h"
#include "lattice/ops.h"
#include "lattice/autograd.h"
#include "lattice/io.h"
#include "lattice/data.h"
#include "lattice/optim.h"
#include "lattice/sparse.h"
#include "lattice/sparse_pool.h"
#include "lattice/sparse_algebra.h"
#include "lattice/sparse_rows.h"
#include "lattice/sparse_order.h"
#include "lattice/sparse_voxel.h"
#include "lattice/sparse_coords.h"
#include "lattice/sparse_neighbors.h"
#include "lattice/transformer.h"
#include "lattice/generate.h"
#include "lattice/quant.h"
#include "lattice/blas.h"
#include "lattice/cpu.h"
#include "lattice/peak.h"

#endif
