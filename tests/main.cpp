// The doctest runner, plus a counting global operator new so tests can prove that a
// forward pass allocates nothing (ctnn_test::allocations(); tests/counting_new.hpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "counting_new.hpp"
