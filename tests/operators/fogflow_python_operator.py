#!/usr/bin/env python3
"""A minimal FogFlow operator that speaks only FogFlow's published operator protocol.

It follows the shape of FogFlow's Python operator template (application/template/python/main.py), using the
standard library only (http.server + urllib), so it runs anywhere python3 does:

- env ``myport``: the port to listen on (0.0.0.0, plain HTTP); env ``adminCfg``: a JSON array of admin
  commands (CONNECT_BROKER, SET_CORRELATORID, SET_REFERENCE, SET_OUTPUTS); without ``adminCfg``, env
  ``brokerURL`` is used as CONNECT_BROKER;
- ``POST /notifyContext``: an NGSIv1 notification; every element with statusCode 200 is turned into FogFlow's
  "flat object" and handed to ``handleEntity``; reply ``{"responseCode":{"code":200,"reasonPhrase":"OK"}}``;
- ``POST /admin``: a JSON array of admin commands, applied in order; reply ``{}``;
- ``handleEntity`` converts attribute ``temperature`` (degrees Celsius) into ``temperature_f`` (Fahrenheit) and
  ``source``, published on the first output stream (else ``<inputId>.converted`` of type ``Converted``) with the
  input's domain metadata, through ``POST <brokerURL>/updateContext`` carrying ``Fiware-Correlator``;
- SIGTERM / SIGINT: exit 0.

Used by the integration tests (tests/it/operators.rs) and by the worker's operator-contract test.
"""

import json
import os
import queue
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

brokerURL = ''
correlatorID = ''
outputs = []
lock = threading.Lock()
publishQueue = queue.Queue(maxsize=1000)


def log(*args):
    print('[python-operator]', *args, file=sys.stderr, flush=True)


def handleConfig(configurations):
    global brokerURL, correlatorID
    with lock:
        for config in configurations:
            if not isinstance(config, dict):
                continue
            command = config.get('command')
            if command == 'CONNECT_BROKER':
                brokerURL = config.get('brokerURL', '')
            elif command == 'SET_CORRELATORID':
                correlatorID = config.get('correlatorID', '')
            elif command == 'SET_OUTPUTS':
                output = {'id': config.get('id', ''), 'type': config.get('type', '')}
                if output not in outputs:
                    outputs.append(output)


def element2Object(element):
    ctxObj = {'entityId': element['entityId'], 'attributes': {}, 'metadata': {}}
    for attr in element.get('attributes') or []:
        ctxObj['attributes'][attr['name']] = {'type': attr.get('type', ''), 'value': attr.get('value')}
    for meta in element.get('domainMetadata') or []:
        ctxObj['metadata'][meta['name']] = {'type': meta.get('type', ''), 'value': meta.get('value')}
    return ctxObj


def object2Element(ctxObj):
    element = {'entityId': ctxObj['entityId'], 'attributes': [], 'domainMetadata': []}
    for name, attr in ctxObj.get('attributes', {}).items():
        element['attributes'].append({'name': name, 'type': attr['type'], 'value': attr['value']})
    for name, meta in ctxObj.get('metadata', {}).items():
        element['domainMetadata'].append({'name': name, 'type': meta['type'], 'value': meta['value']})
    return element


def readContextElements(data):
    ctxObjects = []
    for response in data['contextResponses']:
        if response['statusCode']['code'] == 200:
            ctxObjects.append(element2Object(response['contextElement']))
    return ctxObjects


def handleEntity(ctxObj):
    temperature = ctxObj['attributes'].get('temperature')
    if temperature is None:
        return
    value = temperature['value']
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        log('temperature is not a number:', value)
        return
    try:
        celsius = float(value)
    except ValueError:
        log('temperature is not a number:', value)
        return
    inputId = ctxObj['entityId'].get('id', '')
    with lock:
        first = dict(outputs[0]) if outputs else None
    if first:
        entityId = {'id': first['id'], 'type': first['type'], 'isPattern': False}
    else:
        entityId = {'id': inputId + '.converted', 'type': 'Converted', 'isPattern': False}
    result = {
        'entityId': entityId,
        'attributes': {
            'temperature_f': {'type': 'float', 'value': celsius * 9 / 5 + 32},
            'source': {'type': 'string', 'value': inputId},
        },
        'metadata': ctxObj['metadata'],
    }
    publish(result)


def publish(ctxObj):
    with lock:
        target = (brokerURL, correlatorID)
    if target[0] == '':
        log('no broker configured; result dropped')
        return
    try:
        publishQueue.put_nowait((target, object2Element(ctxObj)))
    except queue.Full:
        log('publish queue full; result dropped')


def updateContext(target, element):
    url, correlator = target
    body = json.dumps({'contextElements': [element], 'updateAction': 'UPDATE'}).encode('utf-8')
    headers = {'Content-Type': 'application/json', 'Accept': 'application/json'}
    if correlator:
        headers['Fiware-Correlator'] = correlator
    delay = 0.2
    for attempt in range(1, 5):
        request = urllib.request.Request(url.rstrip('/') + '/updateContext', data=body, headers=headers, method='POST')
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
                return
        except urllib.error.HTTPError as error:
            log('update failed (attempt %d): HTTP %d' % (attempt, error.code))
            if error.code < 500:
                return
        except (urllib.error.URLError, OSError) as error:
            log('update failed (attempt %d): %s' % (attempt, error))
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def publisher():
    while True:
        target, element = publishQueue.get()
        try:
            updateContext(target, element)
        except Exception as error:  # never let the publishing thread die
            log('update failed:', error)


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def reply(self, status, obj):
        body = json.dumps(obj).encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def bad_request(self, details):
        self.reply(400, {'errorCode': {'code': '400', 'reasonPhrase': 'Bad Request', 'details': details}})

    def do_GET(self):
        if self.path == '/health':
            self.reply(200, {'status': 'ok'})
        else:
            self.reply(404, {'error': 'Not found'})

    def do_POST(self):
        try:
            length = int(self.headers.get('Content-Length') or 0)
        except ValueError:
            length = -1
        if length < 0 or length > 4 * 1024 * 1024:
            self.close_connection = True
            self.bad_request('missing or too large Content-Length')
            return
        raw = self.rfile.read(length)
        try:
            data = json.loads(raw)
        except ValueError as error:
            self.bad_request('invalid JSON: %s' % error)
            return
        if self.path == '/notifyContext':
            try:
                objs = readContextElements(data)
            except (KeyError, TypeError, AttributeError) as error:
                self.bad_request('not an NGSIv1 notification: %r' % (error,))
                return
            for obj in objs:
                try:
                    handleEntity(obj)
                except Exception as error:
                    log('entity skipped:', error)
            self.reply(200, {'responseCode': {'code': 200, 'reasonPhrase': 'OK'}})
        elif self.path == '/admin':
            if not isinstance(data, list):
                self.bad_request('expected a JSON array of admin commands')
                return
            handleConfig(data)
            self.reply(200, {})
        else:
            self.reply(404, {'error': 'Not found'})

    def log_message(self, format, *args):
        log(self.address_string(), format % args)


def main():
    myport = os.environ.get('myport', '')
    try:
        port = int(myport)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        log('environment variable myport must be a port number, got %r' % myport)
        return 64
    adminCfg = os.environ.get('adminCfg', '')
    if adminCfg.strip():
        try:
            commands = json.loads(adminCfg)
        except ValueError as error:
            log('adminCfg is not JSON:', error)
            return 64
        if not isinstance(commands, list):
            log('adminCfg is not a JSON array')
            return 64
        handleConfig(commands)
    elif os.environ.get('brokerURL'):
        handleConfig([{'command': 'CONNECT_BROKER', 'brokerURL': os.environ['brokerURL']}])

    threading.Thread(target=publisher, daemon=True).start()
    server = ThreadingHTTPServer(('0.0.0.0', port), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log('listening on port', port, 'broker', brokerURL or '(none)')
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
