package store

// keyspace builds every key name the store writes (the key map is in the
// package comment). Every name starts with the namespace, so deployments
// (or test packages) with different redis.namespace values share one Redis
// without seeing each other's keys; the {id} hash tag stays the only braces
// in a visit's keys, so Cluster still puts all of one visit's keys in one
// slot.
type keyspace struct{ prefix string }

// newKeyspace returns the keyspace of namespace ("" = the plain vf: keys).
// config.Validate keeps braces out of namespaces.
func newKeyspace(namespace string) keyspace {
	if namespace == "" {
		return keyspace{prefix: "vf:"}
	}
	return keyspace{prefix: namespace + ":vf:"}
}

func (k keyspace) visit(id string) string          { return k.prefix + "visit:{" + id + "}" }
func (k keyspace) timeline(id string) string       { return k.visit(id) + ":timeline" }
func (k keyspace) outbox(id string) string         { return k.visit(id) + ":outbox" }
func (k keyspace) seen(id string) string           { return k.visit(id) + ":seen" }
func (k keyspace) guests(id string) string         { return k.visit(id) + ":guests" }
func (k keyspace) roomIndex(name string) string    { return k.prefix + "idx:room:" + name }
func (k keyspace) callIndex(sid string) string     { return k.prefix + "idx:call:" + sid }
func (k keyspace) pinIndex(pin string) string      { return k.prefix + "idx:pin:" + pin }
func (k keyspace) inviteIndex(hash string) string  { return k.prefix + "idx:invite:" + hash }
func (k keyspace) optOut(hash string) string       { return k.prefix + "optout:" + hash }
func (k keyspace) dialInFail(caller string) string { return k.prefix + "rl:dialin:" + caller }
func (k keyspace) schedule() string                { return k.prefix + "idx:schedule" }
func (k keyspace) outboxPending() string           { return k.prefix + "outbox:pending" }

// outboxPattern matches every visit's outbox key (SCAN MATCH).
func (k keyspace) outboxPattern() string { return k.prefix + "visit:{*}:outbox" }

// The audit trail: a stream per UTC day, the index of those days, and per
// visit its references into the day streams (a stream of copies on visits
// whose trail began before, audit.go). A visit's trail shares the visit's
// hash tag but is not one of the visit's keys: it outlives the visit
// (audit.retention).
func (k keyspace) auditDay(day string) string { return k.prefix + "audit:" + day }
func (k keyspace) auditDays() string          { return k.prefix + "audit:days" }
func (k keyspace) auditRefs(id string) string { return k.prefix + "audit:refs:{" + id + "}" }
func (k keyspace) auditVisit(id string) string {
	return k.prefix + "audit:visit:{" + id + "}"
}

func (k keyspace) replyIndex(hash string) string     { return k.prefix + "idx:reply:" + hash }
func (k keyspace) reconcile() string                 { return k.prefix + "idx:reconcile" }
func (k keyspace) dialInBudget(window string) string { return k.prefix + "rl:dialin-budget:" + window }
func (k keyspace) patientPhone(hash string) string   { return k.prefix + "idx:patient-phone:" + hash }
