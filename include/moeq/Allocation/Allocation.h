//===- Allocation.h - exact mixed-precision bit allocation (IR-free) -*- C++ -*-===//
//
// MxMoE's per-layer allocation: every block (an expert linear, or linears
// tied to one scheme) picks one option (a candidate scheme with its
// measured loss, predicted time and storage bits) so that the storage fits a
// budget and r * log(L) + (1 - r) * log(T) is least, where L and T are the
// summed loss and time of the chosen options.
//
// The objective is not linear, but it is concave in (L, T) and grows with
// both, so its minimum over the achievable (L, T) points is a vertex of
// their convex hull: the optimum of a weighted sum a L + b T, a
// multiple-choice knapsack solved exactly (dynamic programming over the
// budget, or GLPK's branch-and-bound MILP; the tests check one against the
// other and both against enumeration). solveAllocation finds those vertices by
// dichotomic search between the least-loss and the least-time ends,
// skipping every part of the frontier where a bound shows no better point
// can lie; what is left unexplored when a solve limit stops it is the
// reported gap. The method is described in docs/allocation.md.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_ALLOCATION_ALLOCATION_H
#define MOEQ_ALLOCATION_ALLOCATION_H

#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace mlir::moeq::alloc {

/// One way to store a block.
struct Option {
  double loss = 0;    ///< quantization loss of the block with this option (>= 0)
  double seconds = 0; ///< predicted kernel time of the block (>= 0)
  double bits = 0;    ///< storage bits of the block (weights x bits per weight)
};

/// A block and its candidate options (the same candidate list order for
/// every block is not required).
struct Block {
  std::vector<Option> options;
};

struct Problem {
  std::vector<Block> blocks;
  double budgetBits = 0; ///< total storage bits allowed
  double r = 1.0;        ///< accuracy weight in [0, 1]
};

/// How the weighted-sum subproblems are solved (both exact).
enum class Engine {
  Auto,               ///< the dynamic program when it applies, else the MILP
  DynamicProgramming, ///< over the budget in units of the gcd of option sizes
  MILP,               ///< GLPK branch-and-bound
};

struct Solution {
  std::vector<int> choice; ///< option index per block
  double loss = 0, seconds = 0, bits = 0;
  double objective = 0;  ///< r log L + (1-r) log T of `choice`
  double lowerBound = 0; ///< proven lower bound of the objective
  double gap() const { return objective - lowerBound; }
  int milpSolves = 0;    ///< weighted-sum subproblems solved
  Engine engine = Engine::Auto; ///< the engine that solved them
  int frontierPoints = 0; ///< convex-hull vertices of the (L, T) frontier found
};

struct SolveOptions {
  /// MILPs before giving up on proving optimality (the gap is then
  /// reported, not hidden).
  int maxSolves = 2000;
  Engine engine = Engine::Auto;
};

/// r log L + (1 - r) log T with L and T floored at 1e-300 (a loss of zero
/// is possible, e.g. a block kept in full precision).
double objective(double r, double loss, double seconds);

/// Solves `problem` exactly (see file comment). Fails when the budget
/// cannot be met even with the smallest option of every block (the error
/// names the least budget possible), or on an invalid problem.
llvm::Expected<Solution> solveAllocation(const Problem &problem,
                                         const SolveOptions &options = {});

/// Enumerates every assignment: the reference the tests check the solver
/// against (small problems only; fails beyond 2^22 assignments).
llvm::Expected<Solution> solveByEnumeration(const Problem &problem);

} // namespace mlir::moeq::alloc

#endif // MOEQ_ALLOCATION_ALLOCATION_H
