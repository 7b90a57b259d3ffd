package store

const prefix = "vf:"

func visitKey(id string) string          { return prefix + "visit:{" + id + "}" }
func timelineKey(id string) string       { return visitKey(id) + ":timeline" }
func outboxKey(id string) string         { return visitKey(id) + ":outbox" }
func seenKey(id string) string           { return visitKey(id) + ":seen" }
func roomIndexKey(name string) string    { return prefix + "idx:room:" + name }
func callIndexKey(sid string) string     { return prefix + "idx:call:" + sid }
func pinIndexKey(pin string) string      { return prefix + "idx:pin:" + pin }
func inviteIndexKey(hash string) string  { return prefix + "idx:invite:" + hash }
func optOutKey(hash string) string       { return prefix + "optout:" + hash }
func dialInFailKey(caller string) string { return prefix + "rl:dialin:" + caller }

const (
	scheduleKey      = prefix + "idx:schedule"
	outboxPendingKey = prefix + "outbox:pending"
)
