package codec

// Version is the protocol level carried in CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1, protocol name "MQTT"
	V5   Version = 5 // MQTT 5.0, protocol name "MQTT"
)

// Type is a control packet type (§2.1.2).
type Type byte

// Control packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15 // MQTT 5 only
)

// FixedHeader is the first 2..5 bytes of every packet.
type FixedHeader struct {
	Type      Type
	Flags     byte // low nibble of byte 1
	Remaining int  // remaining length: bytes after the fixed header
	HeaderLen int  // bytes of the fixed header itself (2..5)
}

// Len is the whole packet's length on the wire.
func (h FixedHeader) Len() int { return h.HeaderLen + h.Remaining }

// UserProperty is one MQTT 5 user property (a UTF-8 string pair). Both slices
// alias the decoded input.
type UserProperty struct {
	Key, Value []byte
}

// Properties holds every MQTT 5 property. Which ones were present on the wire
// is recorded in Present (bit 1<<id for property identifier id); Append
// writes exactly the properties whose bit is set. The two list-valued ones,
// User and SubscriptionIDs, have no bit (decoding leaves it clear and Append
// ignores it): they are present when non-empty. Has answers for all
// properties. All []byte fields alias the decoded input.
type Properties struct {
	Present uint64

	PayloadFormat        byte   // 0x01
	MessageExpiry        uint32 // 0x02
	ContentType          []byte // 0x03
	ResponseTopic        []byte // 0x08
	CorrelationData      []byte // 0x09
	SubscriptionIDs      []uint32
	SessionExpiry        uint32 // 0x11
	AssignedClientID     []byte // 0x12
	ServerKeepAlive      uint16 // 0x13
	AuthMethod           []byte // 0x15
	AuthData             []byte // 0x16
	RequestProblemInfo   byte   // 0x17
	WillDelay            uint32 // 0x18
	RequestResponseInfo  byte   // 0x19
	ResponseInfo         []byte // 0x1A
	ServerReference      []byte // 0x1C
	ReasonString         []byte // 0x1F
	ReceiveMaximum       uint16 // 0x21
	TopicAliasMaximum    uint16 // 0x22
	TopicAlias           uint16 // 0x23
	MaximumQoS           byte   // 0x24
	RetainAvailable      byte   // 0x25
	User                 []UserProperty
	MaximumPacketSize    uint32 // 0x27
	WildcardSubAvailable byte   // 0x28
	SubIDAvailable       byte   // 0x29
	SharedSubAvailable   byte   // 0x2A
}

// Property identifiers (§2.2.2.2).
const (
	PropPayloadFormat        = 0x01
	PropMessageExpiry        = 0x02
	PropContentType          = 0x03
	PropResponseTopic        = 0x08
	PropCorrelationData      = 0x09
	PropSubscriptionID       = 0x0B
	PropSessionExpiry        = 0x11
	PropAssignedClientID     = 0x12
	PropServerKeepAlive      = 0x13
	PropAuthMethod           = 0x15
	PropAuthData             = 0x16
	PropRequestProblemInfo   = 0x17
	PropWillDelay            = 0x18
	PropRequestResponseInfo  = 0x19
	PropResponseInfo         = 0x1A
	PropServerReference      = 0x1C
	PropReasonString         = 0x1F
	PropReceiveMaximum       = 0x21
	PropTopicAliasMaximum    = 0x22
	PropTopicAlias           = 0x23
	PropMaximumQoS           = 0x24
	PropRetainAvailable      = 0x25
	PropUser                 = 0x26
	PropMaximumPacketSize    = 0x27
	PropWildcardSubAvailable = 0x28
	PropSubIDAvailable       = 0x29
	PropSharedSubAvailable   = 0x2A
)

// Has reports whether property id is present: its Present bit, or for
// PropUser and PropSubscriptionID a non-empty slice.
func (p *Properties) Has(id byte) bool {
	switch id {
	case PropUser:
		return len(p.User) > 0
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	}
	return id < 64 && p.Present&(1<<id) != 0
}

// Set marks property id present (the caller sets the field). It has no
// effect for PropUser and PropSubscriptionID, which are present when their
// slice is non-empty.
func (p *Properties) Set(id byte) {
	if id < 64 && id != PropUser && id != PropSubscriptionID {
		p.Present |= 1 << id
	}
}

// Connect is a CONNECT packet. Slices alias the decoded input.
type Connect struct {
	ProtocolName []byte  // "MQTT" or "MQIsdp"
	Version      Version // protocol level
	CleanStart   bool    // Clean Session in 3.x
	KeepAlive    uint16
	Props        Properties
	ClientID     []byte

	WillFlag    bool
	WillQoS     byte
	WillRetain  bool
	WillProps   Properties
	WillTopic   []byte
	WillPayload []byte

	UsernameFlag bool
	Username     []byte
	PasswordFlag bool
	Password     []byte
}

// Connack is a CONNACK packet. Code is the v5 reason code or the 3.x return code.
type Connack struct {
	SessionPresent bool
	Code           byte
	Props          Properties
}

// Publish is a PUBLISH packet. Topic, Payload and properties alias the input.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    []byte
	PacketID uint16 // 0 for QoS 0
	Props    Properties
	Payload  []byte
}

// Ack is PUBACK, PUBREC, PUBREL or PUBCOMP, which share one layout (§3.4–3.7).
type Ack struct {
	Type     Type // PUBACK, PUBREC, PUBREL or PUBCOMP
	PacketID uint16
	Code     ReasonCode // v5 only; Success when absent
	Props    Properties
}

// Subscription options (v5 §3.8.3.1); QoS only in 3.x.
type Subscription struct {
	Filter            []byte
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Subscribe is a SUBSCRIBE packet. Props.SubscriptionIDs holds at most one id.
type Subscribe struct {
	PacketID uint16
	Props    Properties
	Subs     []Subscription
}

// Suback is a SUBACK packet; Codes holds one code per filter (3.x: granted
// QoS or 0x80).
type Suback struct {
	PacketID uint16
	Props    Properties
	Codes    []ReasonCode
}

// Unsubscribe is an UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Props    Properties
	Filters  [][]byte
}

// Unsuback is an UNSUBACK packet; Codes is v5 only (3.x has no payload).
type Unsuback struct {
	PacketID uint16
	Props    Properties
	Codes    []ReasonCode
}

// Disconnect is a DISCONNECT packet (reason and properties: v5 only).
type Disconnect struct {
	Code  ReasonCode
	Props Properties
}

// Auth is an MQTT 5 AUTH packet.
type Auth struct {
	Code  ReasonCode
	Props Properties
}
