// What built this binary: the project's version and the git commit of the
// source tree ("+modified" when it had uncommitted changes), so that a run's
// done.yaml names the code that produced it.
#pragma once

namespace llmdion {

// e.g. "0.1.0 (git 8f6abe1)", "0.1.0 (git 8f6abe1+modified)", "0.1.0 (no git)".
const char* build_version();

}  // namespace llmdion
