#pragma once
// Precompiled for every test file but main.cpp (CMakeLists.txt): Catch2 and the headers most
// tests include, parsed once per build instead of once per file (about 3 s of each file's 6).
#include <catch2/catch.hpp>

#include "engine/ops.h"
#include "engine/tensor.h"
#include "meta/trainers.h"
#include "models/zoo.h"
#include "op_test.h"
