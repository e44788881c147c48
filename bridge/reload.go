package bridge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"reflect"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// ReloadResult says what a Reload changed, by master name.
type ReloadResult struct {
	Added, Removed, Changed, Unchanged []string
}

// ErrStopped is Reload's error once Run has returned.
var ErrStopped = errors.New("the bridge has stopped")

// Reload makes the bridge follow cfg (checked by ParseConfig) without a
// restart. Masters new in cfg start; masters gone from it stop; masters
// whose settings changed (a token file's content counts) are replaced. A
// stopped or replaced master takes no more jobs, its builds in flight run
// to their end and report as usual, and then its workers leave: a job is
// never lost or run twice by a reload. Jobs still queued wait for a
// master that can take them. A change of the gearman section (its servers,
// or the content of its CA, certificate or key files) replaces every
// master.
func (b *Bridge) Reload(cfg *Config) (ReloadResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var res ReloadResult
	if b.ctx != nil && b.ctx.Err() != nil {
		return res, ErrStopped
	}
	servers := cfg.Gearman.Servers
	if len(servers) == 0 {
		servers = []string{b.embedded}
	}
	serversChanged := !slices.Equal(servers, b.servers) || !sameTLS(cfg.Gearman.tls, b.gearTLS)
	b.servers, b.gearTLS = servers, cfg.Gearman.tls

	want := map[string]bool{}
	var order []*master
	for _, mc := range cfg.Masters {
		want[mc.Name] = true
		old := b.masters[mc.Name]
		if old != nil && !serversChanged && old.cfg.equal(mc) {
			res.Unchanged = append(res.Unchanged, mc.Name)
			order = append(order, old)
			continue
		}
		m := newMaster(b, mc, servers, b.gearTLS)
		if old != nil {
			res.Changed = append(res.Changed, mc.Name)
			b.retireLocked(old)
		} else {
			res.Added = append(res.Added, mc.Name)
		}
		b.masters[mc.Name] = m
		order = append(order, m)
		if b.ctx != nil {
			b.startLocked(m)
		}
	}
	for _, m := range b.order {
		if !want[m.cfg.Name] {
			res.Removed = append(res.Removed, m.cfg.Name)
			delete(b.masters, m.cfg.Name)
			b.retireLocked(m)
		}
	}
	b.order = order
	return res, nil
}

// retireLocked stops m after its builds; retired does the rest.
func (b *Bridge) retireLocked(m *master) {
	if b.ctx == nil {
		return // never started
	}
	b.leaving[m] = true
	m.log.Info("stopping the master's workers: no new jobs, builds in flight run to their end")
	m.stop()
}

// retired is called when m's run returns: at the end, or after a reload
// stopped it and its builds ended.
func (b *Bridge) retired(m *master) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.leaving[m] {
		return
	}
	delete(b.leaving, m)
	name := m.cfg.Name
	if next := b.masters[name]; next != nil {
		// Its successor carries the request count on, so that the counter
		// never goes down.
		next.jc.requests.Add(m.jc.requests.Load())
		return
	}
	for other := range b.leaving {
		if other.cfg.Name == name {
			return
		}
	}
	b.metrics.polls.DeleteLabelValues(name)
	b.metrics.workers.DeleteLabelValues(name)
	b.metrics.pollErrors.DeletePartialMatch(prometheus.Labels{"master": name})
}

// equal reports whether two checked master configurations would run the
// same way: the same settings, token and CA bundle.
func (c MasterConfig) equal(o MasterConfig) bool {
	a, z := c, o
	a.token, a.tls, a.base, a.caPEM = "", nil, nil, nil
	z.token, z.tls, z.base, z.caPEM = "", nil, nil, nil
	return reflect.DeepEqual(a, z) && c.token == o.token && bytes.Equal(c.caPEM, o.caPEM)
}

// sameTLS reports whether two tls:// settings trust the same CAs and
// present the same certificates.
func sameTLS(a, b *tls.Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	if (a.RootCAs == nil) != (b.RootCAs == nil) || a.RootCAs != nil && !a.RootCAs.Equal(b.RootCAs) {
		return false
	}
	return slices.EqualFunc(a.Certificates, b.Certificates, func(x, y tls.Certificate) bool {
		return slices.EqualFunc(x.Certificate, y.Certificate, bytes.Equal) && reflect.DeepEqual(x.PrivateKey, y.PrivateKey)
	})
}
