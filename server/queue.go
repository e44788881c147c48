package server

// jobList is an intrusive FIFO of queued jobs: O(1) push, pop and removal
// from the middle (cancel, an orphaned foreground job), no allocation.
type jobList struct {
	head, tail *job
	n          int
}

func (l *jobList) pushBack(j *job) {
	j.prev, j.next, j.list = l.tail, nil, l
	if l.tail != nil {
		l.tail.next = j
	} else {
		l.head = j
	}
	l.tail = j
	l.n++
}

func (l *jobList) remove(j *job) {
	if j.list != l {
		return
	}
	if j.prev != nil {
		j.prev.next = j.next
	} else {
		l.head = j.next
	}
	if j.next != nil {
		j.next.prev = j.prev
	} else {
		l.tail = j.prev
	}
	j.prev, j.next, j.list = nil, nil, nil
	l.n--
}

// delayedHeap orders epoch jobs that are not yet due by their due time,
// then by ID, so that equal times keep submit order.
type delayedHeap []*job

func (h delayedHeap) Len() int { return len(h) }
func (h delayedHeap) Less(a, b int) bool {
	if h[a].Epoch != h[b].Epoch {
		return h[a].Epoch < h[b].Epoch
	}
	return h[a].ID < h[b].ID
}
func (h delayedHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].heapIndex, h[b].heapIndex = a, b
}
func (h *delayedHeap) Push(x any) {
	j := x.(*job)
	j.heapIndex = len(*h)
	*h = append(*h, j)
}
func (h *delayedHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.heapIndex = -1
	return j
}
