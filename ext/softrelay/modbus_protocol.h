/* Modbus/TCP as the slave speaks it: every function code, exception code and limit, named once.
 *
 * The values are those of the Modbus Application Protocol v1.1b3 and of the protocol written
 * once in Python, softrelay.modbus.protocol, whose names they carry (SR_FC_<name> is
 * protocol.Function.<name>, SR_EX_<name> is protocol.ExceptionCode.<name>, SR_LIMIT_<name> is
 * protocol.<name>, the framing figures protocol's MBAP ones); tests/test_modbus_protocol.py
 * parses this file and holds it to that module.
 */
#ifndef SR_MODBUS_PROTOCOL_H
#define SR_MODBUS_PROTOCOL_H

/* function codes */
#define SR_FC_READ_COILS 1
#define SR_FC_READ_DISCRETE_INPUTS 2
#define SR_FC_READ_HOLDING_REGISTERS 3
#define SR_FC_READ_INPUT_REGISTERS 4
#define SR_FC_WRITE_SINGLE_COIL 5
#define SR_FC_WRITE_SINGLE_REGISTER 6
#define SR_FC_WRITE_MULTIPLE_COILS 15
#define SR_FC_WRITE_MULTIPLE_REGISTERS 16
#define SR_FC_READ_WRITE_REGISTERS 23
#define SR_FC_ENCAPSULATED_INTERFACE 43

/* exception codes (the response's function code has SR_EXCEPTION_BIT set) */
#define SR_EX_ILLEGAL_FUNCTION 1
#define SR_EX_ILLEGAL_ADDRESS 2
#define SR_EX_ILLEGAL_VALUE 3
#define SR_EX_DEVICE_FAILURE 4
#define SR_EX_SERVER_BUSY 6
#define SR_EX_GATEWAY_TARGET_FAILED 11

/* quantity limits of the requests */
#define SR_LIMIT_READ_BITS 2000
#define SR_LIMIT_READ_WORDS 125
#define SR_LIMIT_WRITE_COILS 1968
#define SR_LIMIT_WRITE_REGISTERS 123
#define SR_LIMIT_RW_REGISTERS 121

/* read device identification (43 / 14) */
#define SR_LIMIT_MEI_READ_DEVICE_ID 14
#define SR_LIMIT_DEVICE_ID_CONFORMITY 130 /* 0x82: regular identification, stream and single */
#define SR_LIMIT_DEVICE_ID_BASIC_LAST 2
#define SR_LIMIT_DEVICE_ID_REGULAR_LAST 6

/* framing */
#define SR_EXCEPTION_BIT 0x80
#define SR_MBAP_HEADER 7   /* transaction 2, protocol 2, length 2, unit 1 */
#define SR_MBAP_PROTOCOL 0 /* Modbus */
#define SR_MBAP_MIN_LENGTH 2   /* the length field: unit + PDU */
#define SR_MBAP_MAX_LENGTH 254
#define SR_MAX_PDU 253
#define SR_MAX_ADU 260     /* MBAP 7 + PDU 253 */

#endif
