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
#include <utility>
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
  /// Those vertices as (L, T), by increasing T: the loss/time trade-off the
  /// choice was made on (the search skips parts of the frontier that cannot
  /// hold the optimum, so it is the frontier near the optimum and its ends).
  std::vector<std::pair<double, double>> frontier;
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

/// DDQ's alternative to the exact solver: a continuous relaxation of the
/// choice, optimised by gradient descent.
struct RelaxationOptions {
  int iterations = 3000;
  double learningRate = 0.05; ///< Adam step on the logits
  /// Softmax temperature, annealed geometrically from `startTemperature`
  /// to `endTemperature`, so that the relaxed choice becomes one-hot.
  double startTemperature = 1.0, endTemperature = 0.02;
};

/// Each block's choice is a softmax over its options (logits, temperature);
/// the expected loss L, time T and bits B are smooth, and Adam minimises
/// r log L + (1-r) log T + lambda (B / budget - 1) + rho/2 max(0, B / budget
/// - 1)^2 with lambda updated as an augmented Lagrangian. The result is
/// rounded (most probable option per block), repaired to the budget
/// (greedy downgrades of least objective increase per bit saved) and
/// polished by single and paired block moves that keep it feasible (best
/// improvement first). No optimality bound: `lowerBound` is -inf; compare
/// with solveAllocation for the gap.
llvm::Expected<Solution> solveByRelaxation(const Problem &problem,
                                           const RelaxationOptions &options = {});

/// A synthetic instance for tests and benchmarks: `blocks` blocks of 1-4 K
/// weights with `schemes` options of 1.25, 2.25, ... bits whose loss falls
/// about 4x per bit and whose time and size grow with the bits, with
/// uniform noise in [0.5, 2] so that options cross; budget `avgBits` per
/// weight. Deterministic in `seed`.
Problem randomProblem(unsigned seed, int blocks, int schemes, double avgBits, double r);

/// Fills loss, seconds, bits and objective of `solution.choice`.
void evaluateChoice(const Problem &problem, Solution &solution);

/// Fails on r outside [0, 1], a non-positive budget, a block without
/// options, a negative or non-finite option, or a budget no choice meets.
llvm::Error validateProblem(const Problem &problem);

} // namespace mlir::moeq::alloc

#endif // MOEQ_ALLOCATION_ALLOCATION_H
