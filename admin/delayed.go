package admin

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mcutie/mcutie/broker"
)

// ---- delayed publish ($delayed/{seconds}/{topic}, --delayed-publish) ----

// delayedJSON is one waiting delayed message. The payload is text when it
// is UTF-8, else base64 (payload_encoding says which).
type delayedJSON struct {
	ID              string    `json:"id"`
	Topic           string    `json:"topic"`
	QoS             byte      `json:"qos"`
	Retain          bool      `json:"retain"`
	PublishAt       time.Time `json:"publish_at"`
	ClientID        string    `json:"client_id"`
	Size            int       `json:"size"`
	Payload         string    `json:"payload"`
	PayloadEncoding string    `json:"payload_encoding"`
}

type deleteDelayedJSON struct {
	ID       string `json:"id"`
	Canceled bool   `json:"canceled"`
}

func delayedOf(m *broker.DelayedMessage) delayedJSON {
	d := delayedJSON{ID: strconv.FormatUint(m.ID, 10), Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, PublishAt: m.PublishAt.UTC(),
		ClientID: m.ClientID, Size: len(m.Payload), PayloadEncoding: "text"}
	if utf8.Valid(m.Payload) {
		d.Payload = string(m.Payload)
	} else {
		d.PayloadEncoding, d.Payload = "base64", base64.StdEncoding.EncodeToString(m.Payload)
	}
	return d
}

// listDelayed is GET /api/v1/delayed: the waiting delayed messages, the
// soonest first, paged; match keeps those whose topic or publisher's
// client id contains it. The list is bounded by --max-delayed-messages.
func (a *API) listDelayed(_ http.ResponseWriter, r *http.Request) (int, any) {
	p, err := a.parsePage(r)
	if err != nil {
		return bad(err)
	}
	var all []delayedJSON
	for _, m := range a.b.DelayedMessages() {
		if p.q.Match != "" && !strings.Contains(m.Topic, p.q.Match) && !strings.Contains(m.ClientID, p.q.Match) {
			continue
		}
		all = append(all, delayedOf(&m))
	}
	out := pageJSON[delayedJSON]{Items: []delayedJSON{}, Total: len(all), Page: p.page, Limit: p.limit}
	if p.q.Offset < len(all) {
		out.Items = all[p.q.Offset:min(p.q.Offset+p.limit, len(all))]
	}
	return http.StatusOK, out
}

// deleteDelayed is DELETE /api/v1/delayed/{id}: the message is not
// published (and its stored record goes).
func (a *API) deleteDelayed(_ http.ResponseWriter, r *http.Request) (int, any) {
	raw := r.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return errorf(http.StatusBadRequest, "id %q is not a delayed message id: take one from GET /api/v1/delayed", raw)
	}
	if err := a.b.CancelDelayed(id); err != nil {
		if errors.Is(err, broker.ErrDelayedNotFound) {
			return errorf(http.StatusNotFound, "no delayed message %d waits (published already, canceled, or never there): list them with GET /api/v1/delayed", id)
		}
		return brokerError(err)
	}
	a.log.Info("admin: delayed message canceled", "id", id, "remote", r.RemoteAddr)
	return http.StatusOK, deleteDelayedJSON{ID: raw, Canceled: true}
}
