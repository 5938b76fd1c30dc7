// Package ipc holds what every System V IPC object shares: the [Key] that
// names an object ([Private] or one made by [Ftok]), the permission record
// ([Perm]) and its default mode, the error type that the segment, semaphore
// and msgq packages return ([Error]), and typed readers for the kernel's
// tables in /proc/sysvipc ([ListShm], [ListMsg], [ListSem]).
//
// Errors from the bindings wrap the kernel's errno, so errors.Is answers
// both the generic questions (fs.ErrExist, fs.ErrNotExist, fs.ErrPermission)
// and the System V ones that have no file-system equivalent ([ErrRemoved],
// [ErrLimit]).
package ipc
