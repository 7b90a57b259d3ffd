package workflows

// Internals the external tests (package workflows_test) drive directly.

// EnsureRoom is (*Engine).ensureRoom: the one place rooms are created.
var EnsureRoom = (*Engine).ensureRoom
