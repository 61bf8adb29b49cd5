package org.apache.kafka.common.utils;

/**
 * Bridge for connect-file 4.3.1 on a 4.4.0 class path: kafka-clients 4.4.0 moved
 * AppInfoParser to org.apache.kafka.common.utils.internals, and connect-file 4.4.0 is not
 * published, so the 4.3.1 connectors' version() would throw NoClassDefFoundError (and the
 * worker's REST API answers 500 to every connector request). Only getVersion() is called.
 */
public final class AppInfoParser {
    private AppInfoParser() {
    }

    public static String getVersion() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getVersion();
    }
}
