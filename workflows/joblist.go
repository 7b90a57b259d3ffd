package workflows

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// TaskLister lists Asynq tasks by queue and state (implemented by
// *asynq.Inspector).
type TaskLister interface {
	ListPendingTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListActiveTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListScheduledTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListArchivedTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListCompletedTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

// JobView is one of a visit's jobs as support staff see it. LastError is
// Asynq's, which carries no PHI (task errors name ids and Twilio codes).
type JobView struct {
	ID, Type, Queue string
	State           string // active, pending, scheduled, retry, archived, completed
	Retried         int
	LastError       string
	// At is when it runs next, completed, or last failed (zero: unknown).
	At time.Time
}

// JobList finds a visit's jobs in Asynq: their task IDs start with the
// visit id (see newJob).
type JobList struct {
	tasks  TaskLister
	queues []string
}

// NewJobList returns a JobList over the given queues.
func NewJobList(tasks TaskLister, queues []string) *JobList {
	return &JobList{tasks: tasks, queues: queues}
}

// maxTasksPerState bounds how many tasks of one state and queue are scanned
// for a visit's jobs.
const maxTasksPerState = 1000

// VisitJobs lists visit id's jobs in every queue and state, by task ID. A
// queue that never held a task is not an error; other failures are joined
// and returned with what could be listed.
func (l *JobList) VisitJobs(_ context.Context, id string) ([]JobView, error) {
	lists := []struct {
		state string
		list  func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	}{
		{"active", l.tasks.ListActiveTasks},
		{"pending", l.tasks.ListPendingTasks},
		{"scheduled", l.tasks.ListScheduledTasks},
		{"retry", l.tasks.ListRetryTasks},
		{"archived", l.tasks.ListArchivedTasks},
		{"completed", l.tasks.ListCompletedTasks},
	}
	var out []JobView
	var errs []error
	for _, q := range l.queues {
		for _, s := range lists {
			tasks, err := s.list(q, asynq.PageSize(maxTasksPerState))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break // nothing was ever queued there
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", q, s.state, err))
				continue
			}
			for _, t := range tasks {
				if !strings.HasPrefix(t.ID, id+":") {
					continue
				}
				j := JobView{ID: t.ID, Type: t.Type, Queue: q, State: s.state, Retried: t.Retried, LastError: t.LastErr}
				switch {
				case !t.NextProcessAt.IsZero():
					j.At = t.NextProcessAt
				case !t.CompletedAt.IsZero():
					j.At = t.CompletedAt
				case !t.LastFailedAt.IsZero():
					j.At = t.LastFailedAt
				}
				out = append(out, j)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, errors.Join(errs...)
}
