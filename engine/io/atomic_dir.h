#pragma once
// Whole-directory replacement: a saved state (a folder of .npy files) is replaced in one step,
// so that a save that fails half-way (disk full, a refused name, a kill) leaves the old state
// whole instead of old and new files mixed.
#include <functional>
#include <string>
#include <string_view>

namespace mq {

// Replaces the directory `target` (created when missing, with its missing parents).
//  1. `target` is resolved (through symlinks); one that exists and is not a directory, or that
//     cannot be resolved (a symlink loop, a dangling symlink), is refused;
//  2. when it exists, `check_old(dir)` inspects it first and may refuse (throw);
//  3. `fill(new_dir, old_dir)` writes the new content into a fresh directory beside it (same
//     parent, so same file system); old_dir is "" when there is none;
//  4. the new directory is swapped in with one rename (renameat2 RENAME_EXCHANGE when the
//     target exists) and the old content removed.
// A failure at any step leaves the target as it was and removes the new directory. `what`
// names the content in messages ("model state").
void replace_directory(
    const std::string& target, std::string_view what,
    const std::function<void(const std::string& old_dir)>& check_old,
    const std::function<void(const std::string& new_dir, const std::string& old_dir)>& fill);

// Creates the new file `path` (refused when it exists), writes `bytes` and fsyncs it.
void write_new_file(const std::string& path, std::string_view bytes);

// Makes sure `target` can become a directory that replace_directory fills: refused (naming it)
// when it exists and is not a directory, or when its parent cannot be created or written.
// Meant for flags such as --save, checked before hours of training.
void check_directory_target(const std::string& target, std::string_view what);

}  // namespace mq
