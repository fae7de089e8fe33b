// The counting global operator new of the test programs, so that a test can prove a step
// allocates nothing (ctnn_test::allocation_counter(); tests/helpers.hpp's allocations() reads it).
// Include it in exactly one translation unit of a program: tests/main.cpp for the unit tests,
// tests/mpi/test_mpi.cpp for the MPI program.
#ifndef CTNN_TEST_COUNTING_NEW_HPP
#define CTNN_TEST_COUNTING_NEW_HPP

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace ctnn_test {
/// Global operator new calls so far.
std::atomic<long>& allocation_counter() {
  static std::atomic<long> n{0};
  return n;
}
}  // namespace ctnn_test

void* operator new(std::size_t n) {
  ++ctnn_test::allocation_counter();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t al) {
  ++ctnn_test::allocation_counter();
  const auto a = static_cast<std::size_t>(al);
  if (void* p = std::aligned_alloc(a, (n + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
// g++ cannot see that these pair with the operator new above.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

#endif
