package api

import (
	"fmt"
	"net/http"

	"github.com/odometerhq/odometer"
)

// subjectsResponse answers GET /api/v1/event-subjects: a page of subjects,
// and Next, the last of them, when the page is full (there may be more:
// pass it as after).
type subjectsResponse struct {
	Subjects []string `json:"subjects"`
	Next     *string  `json:"next,omitempty"`
}

// listSubjects handles GET /api/v1/event-subjects: the distinct subjects
// of the namespace's stored events, in byte order, that start with prefix
// and sort after after. It lists the subjects seen in events; OpenMeter's
// /api/v1/subjects, subjects managed as entities with display names and
// metadata, is a different API that Odometer does not implement.
func (h *handler) listSubjects(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"prefix", "after", "limit"})
	f := odometer.SubjectFilter{
		Namespace: namespace(r),
		Prefix:    p.one("prefix"),
		After:     p.one("after"),
		Limit:     p.int("limit", defaultListLimit, 1, maxListLimit),
	}
	if err := p.err(); err != nil {
		return err
	}
	subjects, err := h.store.ListSubjects(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list subjects: %w", err)
	}
	res := subjectsResponse{Subjects: subjects}
	if res.Subjects == nil {
		res.Subjects = []string{}
	}
	if len(subjects) == f.Limit {
		res.Next = &subjects[len(subjects)-1]
	}
	return writeJSON(w, http.StatusOK, res)
}
