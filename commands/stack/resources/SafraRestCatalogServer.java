// The Iceberg REST catalog reference server (org.apache.iceberg.rest.RESTCatalogServer from the
// iceberg-open-api jar), started the same way but bound to one host instead of all interfaces.
// Compiled once against that jar when the stack provisions the catalog.
package org.apache.iceberg.rest;

import java.net.InetSocketAddress;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.jdbc.JdbcCatalog;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.handler.gzip.GzipHandler;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public final class SafraRestCatalogServer {
  private SafraRestCatalogServer() {}

  public static void main(String[] args) throws Exception {
    String host = System.getenv().getOrDefault("SAFRA_REST_BIND_HOST", "127.0.0.1");
    Map<String, String> props = new HashMap<>(RCKUtils.environmentCatalogConfig());
    props.putIfAbsent("catalog-impl", JdbcCatalog.class.getName());
    props.putIfAbsent("jdbc.schema-version", "V1");
    if (!props.containsKey("uri") || !props.containsKey("warehouse")) {
      System.err.println("CATALOG_URI and CATALOG_WAREHOUSE must be set");
      System.exit(2);
    }
    int port = Integer.parseInt(props.getOrDefault("rest.port", "8181"));
    String name = props.getOrDefault("catalog.name", "rest_backend");
    Catalog catalog = CatalogUtil.buildIcebergCatalog(name, props, new Configuration());

    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addServlet(new ServletHolder(new RESTCatalogServlet(new RESTCatalogAdapter(catalog))), "/*");
    context.insertHandler(new GzipHandler());

    Server server = new Server(new InetSocketAddress(host, port));
    server.setHandler(context);
    server.start();
    System.out.println("Iceberg REST catalog listening on http://" + host + ":" + port);
    server.join();
  }
}
