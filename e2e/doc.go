// Package e2e holds mcutie's end-to-end conformance tests: a broker started
// in-process on a loopback port, driven over real sockets by real clients
// (paho.mqtt.golang for 3.1.1, paho.golang for 5.0, mosquitto_pub and
// mosquitto_sub) and by raw packets written with package codec where a test
// needs bytes no well-behaved client sends.
//
// This folder exists because the job, checking the whole broker from the
// outside against the specification, belongs to none of the packages it
// exercises. Tests are named after the normative statement they check
// (TestSpec_MQTT_3_1_2_22 for [MQTT-3.1.2-22]) where there is one.
package e2e
